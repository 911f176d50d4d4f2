//! Fields of a [`super::view`] read the way `serde_json::Value` lookups did: a
//! value of another type than expected reads as absent (`None`), so a line from
//! another writer or version is never unreadable for one odd field. Fields the
//! view does not name are skipped unread.
use std::{borrow::Cow, collections::BTreeMap, fmt, marker::PhantomData};

use serde::de::{
    Deserialize, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor,
    value::MapAccessDeserializer,
};

/// A type a view field can hold. Each constructor takes one JSON kind; the
/// default refuses it (the field reads as absent) and skips what it holds.
pub(super) trait Field<'de>: Sized {
    fn from_u64(_: u64) -> Option<Self> {
        None
    }
    fn from_bool(_: bool) -> Option<Self> {
        None
    }
    fn from_str(_: Cow<'de, str>) -> Option<Self> {
        None
    }
    /// `null`, a negative or fractional number.
    fn from_other() -> Option<Self> {
        None
    }
    fn from_map<A: MapAccess<'de>>(mut map: A) -> Result<Option<Self>, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(None)
    }
    fn from_seq<A: SeqAccess<'de>>(mut seq: A) -> Result<Option<Self>, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(None)
    }
}

/// For `#[serde(deserialize_with = "lenient")]` on an `Option<T>` field.
pub(super) fn lenient<'de, D: Deserializer<'de>, T: Field<'de>>(
    d: D,
) -> Result<Option<T>, D::Error> {
    d.deserialize_any(Lenient(PhantomData))
}

/// Visitor (and seed, for list elements and map values) of a lenient `T`.
struct Lenient<T>(PhantomData<T>);

impl<'de, T: Field<'de>> DeserializeSeed<'de> for Lenient<T> {
    type Value = Option<T>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Option<T>, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, T: Field<'de>> Visitor<'de> for Lenient<T> {
    type Value = Option<T>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Option<T>, E> {
        Ok(T::from_bool(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Option<T>, E> {
        Ok(T::from_u64(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Option<T>, E> {
        Ok(u64::try_from(v).map_or_else(|_| T::from_other(), T::from_u64))
    }
    fn visit_f64<E>(self, _: f64) -> Result<Option<T>, E> {
        Ok(T::from_other())
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Option<T>, E> {
        Ok(T::from_str(Cow::Borrowed(v)))
    }
    /// A string with escapes: decoded into a buffer that does not last.
    fn visit_str<E>(self, v: &str) -> Result<Option<T>, E> {
        Ok(T::from_str(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E>(self, v: String) -> Result<Option<T>, E> {
        Ok(T::from_str(Cow::Owned(v)))
    }
    fn visit_unit<E>(self) -> Result<Option<T>, E> {
        Ok(T::from_other())
    }
    fn visit_none<E>(self) -> Result<Option<T>, E> {
        Ok(T::from_other())
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Option<T>, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Option<T>, A::Error> {
        T::from_map(map)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Option<T>, A::Error> {
        T::from_seq(seq)
    }
}

impl Field<'_> for u64 {
    fn from_u64(v: u64) -> Option<u64> {
        Some(v)
    }
}

impl Field<'_> for bool {
    fn from_bool(v: bool) -> Option<bool> {
        Some(v)
    }
}

/// Borrowed from the line unless the JSON string had escapes.
impl<'de: 'a, 'a> Field<'de> for Cow<'a, str> {
    fn from_str(v: Cow<'de, str>) -> Option<Self> {
        Some(v)
    }
}

/// A list keeps its elements' places: `None` where one is of another type.
impl<'de, T: Field<'de>> Field<'de> for Vec<Option<T>> {
    fn from_seq<A: SeqAccess<'de>>(mut seq: A) -> Result<Option<Self>, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        while let Some(x) = seq.next_element_seed(Lenient::<T>(PhantomData))? {
            out.push(x);
        }
        Ok(Some(out))
    }
}

/// An object by member name, in name order; a repeated name keeps the last.
impl<'de: 'a, 'a, V: Field<'de>> Field<'de> for BTreeMap<Cow<'a, str>, Option<V>> {
    fn from_map<A: MapAccess<'de>>(mut map: A) -> Result<Option<Self>, A::Error> {
        let mut out = BTreeMap::new();
        while let Some(k) = map.next_key_seed(Lenient::<Cow<'a, str>>(PhantomData))? {
            let v = map.next_value_seed(Lenient::<V>(PhantomData))?;
            // Keys are strings in JSON: `k` is always there.
            if let Some(k) = k {
                out.insert(k, v);
            }
        }
        Ok(Some(out))
    }
}

/// A member that counts as there whatever its value (`null` too), as
/// `Value::get(..).is_some()` did; its value read as `T` if it is one.
#[derive(Debug, Default)]
pub struct Present<T>(pub Option<T>);

impl<'de, T: Field<'de>> Field<'de> for Present<T> {
    fn from_u64(v: u64) -> Option<Self> {
        Some(Present(T::from_u64(v)))
    }
    fn from_bool(v: bool) -> Option<Self> {
        Some(Present(T::from_bool(v)))
    }
    fn from_str(v: Cow<'de, str>) -> Option<Self> {
        Some(Present(T::from_str(v)))
    }
    fn from_other() -> Option<Self> {
        Some(Present(T::from_other()))
    }
    fn from_map<A: MapAccess<'de>>(map: A) -> Result<Option<Self>, A::Error> {
        T::from_map(map).map(|v| Some(Present(v)))
    }
    fn from_seq<A: SeqAccess<'de>>(seq: A) -> Result<Option<Self>, A::Error> {
        T::from_seq(seq).map(|v| Some(Present(v)))
    }
}

/// Objects of the view: read member by member, each lenient in turn.
pub(super) fn object<'de, T: Deserialize<'de>, A: MapAccess<'de>>(
    map: A,
) -> Result<Option<T>, A::Error> {
    T::deserialize(MapAccessDeserializer::new(map)).map(Some)
}

/// [`Field`] for view structs: objects, read by their derived `Deserialize`.
macro_rules! object_field {
    ($($t:ident),* $(,)?) => {$(
        impl<'de: 'a, 'a> $crate::event::lenient::Field<'de> for $t<'a> {
            fn from_map<A: serde::de::MapAccess<'de>>(
                map: A,
            ) -> Result<Option<Self>, A::Error> {
                $crate::event::lenient::object(map)
            }
        }
    )*};
}
pub(super) use object_field;

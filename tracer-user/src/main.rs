//! `tracer`: see the library (`tracer::cli`) for what each subcommand does.
fn main() -> std::process::ExitCode {
    tracer::cli::main()
}

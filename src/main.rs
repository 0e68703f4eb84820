//! The `cohort` binary: parse arguments, hand them to [`cohort::cli::run`], map the outcome to
//! an exit code.

fn main() -> std::process::ExitCode {
    cohort::cli::main()
}

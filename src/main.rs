//! The `cohort` binary: parse arguments, hand them to [`cohort::cli::main`], map the outcome to
//! an exit code.
//!
//! The command runs on a thread with a large stack: DataFusion plans, optimizes and unparses
//! a space's plans recursively, and a space of many audiences nests deeply (a debug build
//! overflowed the main thread's 8 MB compiling `benches/space` to a script).

/// The command thread's stack.
const STACK_BYTES: usize = 256 << 20;

fn main() -> std::process::ExitCode {
    let command = std::thread::Builder::new()
        .name("cohort".into())
        .stack_size(STACK_BYTES)
        .spawn(cohort::cli::main);
    match command.map(|t| t.join()) {
        Ok(Ok(code)) => code,
        // A panic has printed its message; the exit code is Rust's for one.
        Ok(Err(_)) => std::process::ExitCode::from(101),
        Err(e) => {
            eprintln!("error: cannot start the command thread: {e}");
            std::process::ExitCode::from(1)
        }
    }
}

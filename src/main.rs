fn main() -> std::process::ExitCode {
    evalgate::cli::main()
}

//! How the examples end: success, or the error and each of its causes on stderr.

use std::error::Error;
use std::process::ExitCode;

/// `SUCCESS` for `Ok`; for `Err`, prints the error and its chain of causes and returns
/// `FAILURE`.
pub(crate) fn exit_code(result: Result<(), Box<dyn Error + Send + Sync>>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            for cause in std::iter::successors(error.source(), |&cause| cause.source()) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::FAILURE
        }
    }
}

//! The process' ONNX Runtime: the library, loaded from an explicit absolute path once per
//! process (`load-dynamic`), its environment (kept as long as the process), signal masking and
//! the device each session is placed on. The encoders (session.rs) only run ONNX.
//!
//! All signals are blocked on the calling thread while the environment and each session are
//! created, so ONNX Runtime's threads inherit a full mask and Postgres' signals keep reaching
//! the process' main thread. Intra-op threads are configurable and never spin. Create sessions
//! lazily in a backend or in the encoder service's worker, never in the postmaster.
//!
//! Device: `Cpu`, `Cuda` (an error when CUDA cannot be used) or `Auto` (CUDA when the library has
//! the CUDA execution provider and a session can be created with it, else CPU); each session
//! records where it runs and why CUDA was not used (`Placement`).

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use ort::environment::Environment;
use ort::session::builder::SessionBuilder;
use ort::session::Session;

use super::error::EmbedError;

#[derive(Clone, Debug)]
pub struct RuntimeOptions {
    /// Absolute path of libonnxruntime.so (1.31 or newer).
    pub library: PathBuf,
    /// Threads per session for operators; 1 keeps a backend on one core.
    pub intra_threads: usize,
    pub device: Device,
}

/// The execution provider asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Device {
    Auto,
    Cpu,
    Cuda,
}

/// Where a session runs; `fallback` says why CUDA was not used when `Auto` tried it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placement {
    pub cuda: bool,
    pub fallback: Option<String>,
}

/// Why a CUDA session could not be made: the provider is unusable, or the session failed.
enum CudaFailure {
    Unavailable(String),
    Session(EmbedError),
}

impl CudaFailure {
    fn reason(self) -> String {
        match self {
            CudaFailure::Unavailable(reason) => reason,
            CudaFailure::Session(error) => error.to_string(),
        }
    }
}

/// The process' ONNX Runtime environment and the library it came from.
static RUNTIME: Mutex<Option<(PathBuf, Environment)>> = Mutex::new(None);

pub(super) fn environment(library: &Path) -> Result<Environment, EmbedError> {
    let fail = |reason: String| EmbedError::Runtime {
        library: library.to_path_buf(),
        reason,
    };
    let mut runtime = RUNTIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some((loaded, env)) = runtime.as_ref() {
        if loaded == library {
            return Ok(env.clone());
        }
        return Err(fail(format!(
            "ONNX Runtime is already loaded from {} in this process; restart it to change the library",
            loaded.display()
        )));
    }
    if !library.is_absolute() {
        return Err(fail("the path must be absolute".into()));
    }
    if !library.is_file() {
        return Err(fail("no such file".into()));
    }
    let env = with_signals_blocked(|| {
        let builder = ort::init_from(library).map_err(|e| fail(e.to_string()))?;
        builder
            .with_name("xmodal")
            .with_telemetry(false)
            .build()
            .map_err(|e| fail(e.to_string()))
    })?;
    *runtime = Some((library.to_path_buf(), env.clone()));
    Ok(env)
}

/// Runs `f` with every signal blocked on this thread, restoring the mask afterwards (also on panic).
pub(crate) fn with_signals_blocked<T>(f: impl FnOnce() -> T) -> T {
    struct Restore(libc::sigset_t);
    impl Drop for Restore {
        fn drop(&mut self) {
            // SAFETY: restores a mask previously returned by pthread_sigmask.
            unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &self.0, std::ptr::null_mut()) };
        }
    }
    // SAFETY: sigfillset and pthread_sigmask only write the local sets passed to them.
    let _restore = unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_BLOCK, &all, &mut old);
        Restore(old)
    };
    f()
}

pub(super) fn open_session(
    model: &Path,
    options: &RuntimeOptions,
) -> Result<(Session, Placement), EmbedError> {
    let env = environment(&options.library)?;
    let invalid = |reason: String| EmbedError::InvalidModel {
        path: model.to_path_buf(),
        reason,
    };
    if !model.is_file() {
        return Err(EmbedError::MissingFile(model.to_path_buf()));
    }
    let builder = || {
        let builder = Session::builder(&env).map_err(|e| invalid(e.to_string()))?;
        configure(builder, options.intra_threads).map_err(invalid)
    };
    let commit = |mut builder: SessionBuilder| {
        builder
            .commit_from_file(model)
            .map_err(|e| invalid(e.to_string()))
    };
    with_signals_blocked(|| {
        place(
            options.device,
            || {
                let builder = builder().map_err(CudaFailure::Session)?;
                commit(with_cuda(builder).map_err(CudaFailure::Unavailable)?)
                    .map_err(CudaFailure::Session)
            },
            || commit(builder()?),
        )
    })
}

/// Picks the device: `cuda` makes a CUDA session, `cpu` a CPU one.
fn place<S>(
    device: Device,
    cuda: impl FnOnce() -> Result<S, CudaFailure>,
    cpu: impl FnOnce() -> Result<S, EmbedError>,
) -> Result<(S, Placement), EmbedError> {
    let on_cuda = Placement {
        cuda: true,
        fallback: None,
    };
    match device {
        Device::Cpu => Ok((
            cpu()?,
            Placement {
                cuda: false,
                fallback: None,
            },
        )),
        Device::Cuda => match cuda() {
            Ok(session) => Ok((session, on_cuda)),
            Err(CudaFailure::Unavailable(reason)) => Err(EmbedError::Device(reason)),
            Err(CudaFailure::Session(error)) => Err(error),
        },
        Device::Auto => match cuda() {
            Ok(session) => Ok((session, on_cuda)),
            Err(failure) => {
                let fallback = Some(failure.reason());
                Ok((
                    cpu()?,
                    Placement {
                        cuda: false,
                        fallback,
                    },
                ))
            }
        },
    }
}

/// Registers the CUDA execution provider, failing when the library lacks it or it cannot load
/// (its CUDA libraries or the driver are missing).
fn with_cuda(builder: SessionBuilder) -> Result<SessionBuilder, String> {
    use ort::ep::{ExecutionProvider, CUDA};
    if !CUDA::is_available().map_err(|e| e.to_string())? {
        return Err("this ONNX Runtime library has no CUDA execution provider".into());
    }
    builder
        .with_execution_providers([CUDA::default().build().error_on_failure()])
        .map_err(|e| format!("the CUDA execution provider did not load: {e}"))
}

/// Operator threads as asked (at least 1), one graph thread, no spinning.
fn configure(builder: SessionBuilder, intra_threads: usize) -> Result<SessionBuilder, String> {
    let text = |e: ort::Error<SessionBuilder>| e.to_string();
    builder
        .with_intra_threads(intra_threads.max(1))
        .map_err(text)?
        .with_inter_threads(1)
        .map_err(text)?
        .with_intra_op_spinning(false)
        .map_err(text)?
        .with_inter_op_spinning(false)
        .map_err(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_choice() {
        let unavailable = || Err::<&str, _>(CudaFailure::Unavailable("no provider".into()));
        let broken = || Err::<&str, _>(CudaFailure::Session(EmbedError::Inference("boom".into())));
        let cpu = || Ok::<_, EmbedError>("cpu session");
        let cuda = || Ok::<_, CudaFailure>("cuda session");
        let (session, placement) = place(Device::Cpu, cuda, cpu).unwrap();
        assert_eq!(
            (session, placement.cuda, placement.fallback),
            ("cpu session", false, None)
        );
        let (session, placement) = place(Device::Auto, cuda, cpu).unwrap();
        assert_eq!((session, placement.cuda), ("cuda session", true));
        let (session, placement) = place(Device::Auto, unavailable, cpu).unwrap();
        assert_eq!(
            (session, placement.fallback.as_deref()),
            ("cpu session", Some("no provider"))
        );
        let (_, placement) = place(Device::Auto, broken, cpu).unwrap();
        assert!(placement.fallback.unwrap().contains("boom"));
        let err = place(Device::Cuda, unavailable, cpu).unwrap_err();
        assert!(matches!(err, EmbedError::Device(_)), "{err}");
        let err = place(Device::Cuda, broken, cpu).unwrap_err();
        assert!(matches!(err, EmbedError::Inference(_)), "{err}");
        let failing_cpu = || Err::<&str, _>(EmbedError::Inference("cpu failed".into()));
        let err = place(Device::Auto, unavailable, failing_cpu).unwrap_err();
        assert!(err.to_string().contains("cpu failed"), "{err}");
    }
}

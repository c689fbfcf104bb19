//! [`NftLib`]: the data plane's [`Nft`] through libnftables, in process.
//!
//! Running the `nft` binary costs a process start, a namespace switch and a
//! fresh cache of the table for every change: about 20 ms for one changed
//! slot in a table of 160,000 elements, and most of the one-VS budget. The
//! same transaction through the library on a context that lives as long as
//! the programmer takes a fraction of a millisecond, because the context
//! keeps its cache between commands (measured: docs/benchmarks.md, "ELB").
//!
//! The context is not thread-safe and a network namespace is joined per
//! thread, so one worker thread owns both: it joins the namespace, opens
//! the library and the context, then serves requests in order. Whoever
//! cannot load the library (no `libnftables.so.1`) falls back to
//! [`crate::nft::NftCommand`] through [`best`].
//!
//! The library is loaded with `dlopen` rather than linked so that building
//! Ocean needs no `-dev` package and a host without it still runs. Its C
//! API is the one stable interface libnftables offers; calling it needs
//! `unsafe`, kept to this file.
#![allow(unsafe_code)]

use std::ffi::{c_char, c_int, c_uint, c_void, CStr, CString};
use std::fs::File;
use std::sync::mpsc;
use std::sync::Mutex;

use tracing::{debug, info};

use crate::nft::{Nft, NftCommand, NftError};
use crate::nft_script::TABLE;

/// `NFT_CTX_OUTPUT_JSON` in `nftables/libnftables.h`.
const OUTPUT_JSON: c_uint = 1 << 4;

type CtxNew = unsafe extern "C" fn(c_uint) -> *mut c_void;
type CtxFree = unsafe extern "C" fn(*mut c_void);
type CtxFlag = unsafe extern "C" fn(*mut c_void) -> c_int;
type CtxSetFlags = unsafe extern "C" fn(*mut c_void, c_uint);
type CtxGetBuffer = unsafe extern "C" fn(*mut c_void) -> *const c_char;
type RunCmd = unsafe extern "C" fn(*mut c_void, *const c_char) -> c_int;

/// The library's entry points, resolved once.
struct Api {
    _lib: libloading::Library,
    ctx_free: CtxFree,
    set_output_flags: CtxSetFlags,
    get_output: CtxGetBuffer,
    get_error: CtxGetBuffer,
    run: RunCmd,
}

/// One context of the library, owned by the worker thread.
struct Ctx {
    api: Api,
    ctx: *mut c_void,
}

impl Ctx {
    fn open() -> Result<Ctx, String> {
        // SAFETY: loading libnftables runs no initialisers beyond the C
        // library's own; the symbols' types are those of libnftables.h
        // (nftables 1.0), and the pointers never outlive `_lib`.
        unsafe {
            let lib = libloading::Library::new("libnftables.so.1").map_err(|e| e.to_string())?;
            let ctx_new: CtxNew = *lib.get(b"nft_ctx_new\0").map_err(|e| e.to_string())?;
            let buffer_output: CtxFlag = *lib
                .get(b"nft_ctx_buffer_output\0")
                .map_err(|e| e.to_string())?;
            let buffer_error: CtxFlag = *lib
                .get(b"nft_ctx_buffer_error\0")
                .map_err(|e| e.to_string())?;
            let api = Api {
                ctx_free: *lib.get(b"nft_ctx_free\0").map_err(|e| e.to_string())?,
                set_output_flags: *lib
                    .get(b"nft_ctx_output_set_flags\0")
                    .map_err(|e| e.to_string())?,
                get_output: *lib
                    .get(b"nft_ctx_get_output_buffer\0")
                    .map_err(|e| e.to_string())?,
                get_error: *lib
                    .get(b"nft_ctx_get_error_buffer\0")
                    .map_err(|e| e.to_string())?,
                run: *lib
                    .get(b"nft_run_cmd_from_buffer\0")
                    .map_err(|e| e.to_string())?,
                _lib: lib,
            };
            // NFT_CTX_DEFAULT
            let ctx = ctx_new(0);
            if ctx.is_null() {
                return Err("nft_ctx_new returned NULL".into());
            }
            let ctx = Ctx { api, ctx };
            if buffer_output(ctx.ctx) != 0 || buffer_error(ctx.ctx) != 0 {
                return Err("cannot buffer libnftables output".into());
            }
            Ok(ctx)
        }
    }

    /// Runs `cmd` with JSON output or not; the output or the error text.
    fn run(&mut self, cmd: &str, json: bool) -> Result<String, String> {
        let text = CString::new(cmd).map_err(|_| "a NUL byte in the script".to_string())?;
        // SAFETY: `ctx` is a live context owned by this thread; the buffers
        // it returns stay valid until the next command, and are copied out
        // before then.
        unsafe {
            (self.api.set_output_flags)(self.ctx, if json { OUTPUT_JSON } else { 0 });
            let rc = (self.api.run)(self.ctx, text.as_ptr());
            let read = |p: *const c_char| {
                if p.is_null() {
                    String::new()
                } else {
                    CStr::from_ptr(p).to_string_lossy().into_owned()
                }
            };
            let out = read((self.api.get_output)(self.ctx));
            let err = read((self.api.get_error)(self.ctx));
            if rc == 0 {
                Ok(out)
            } else {
                Err(err)
            }
        }
    }
}

impl Drop for Ctx {
    fn drop(&mut self) {
        // SAFETY: freed once, by the thread that owns it.
        unsafe { (self.api.ctx_free)(self.ctx) }
    }
}

enum Req {
    /// `list <what>` in JSON.
    List(String, mpsc::Sender<Result<Option<String>, NftError>>),
    Apply(String, mpsc::Sender<Result<(), NftError>>),
}

/// libnftables on a worker thread in the table's namespace (module docs).
#[derive(Debug)]
pub struct NftLib {
    tx: Mutex<mpsc::Sender<Req>>,
}

impl NftLib {
    /// Starts the worker: joins `netns` (a name under `/run/netns`) when
    /// given, then opens the library. Fails when either cannot be done.
    pub fn open(netns: Option<&str>) -> Result<NftLib, NftError> {
        let (tx, rx) = mpsc::channel::<Req>();
        let (ready_tx, ready_rx) = mpsc::channel::<Result<(), String>>();
        let netns = netns.map(str::to_string);
        std::thread::Builder::new()
            .name("elb-nft".into())
            .spawn(move || {
                let ctx = join(netns.as_deref()).and_then(|()| Ctx::open());
                let mut ctx = match ctx {
                    Ok(c) => {
                        let _ = ready_tx.send(Ok(()));
                        c
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                for req in rx {
                    match req {
                        Req::List(what, reply) => {
                            let _ = reply.send(list(&mut ctx, &what));
                        }
                        Req::Apply(script, reply) => {
                            let r = ctx.run(&script, false).map(drop).map_err(|mut stderr| {
                                stderr.truncate(2_000);
                                NftError::Failed {
                                    action: "apply",
                                    stderr,
                                }
                            });
                            let _ = reply.send(r);
                        }
                    }
                }
            })?;
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(NftLib { tx: Mutex::new(tx) }),
            Ok(Err(e)) => Err(NftError::Library(e)),
            Err(_) => Err(NftError::Library("the nft worker ended".into())),
        }
    }

    fn list_json(&self, what: String) -> Result<Option<String>, NftError> {
        let (tx, rx) = mpsc::channel();
        self.send(Req::List(what, tx))?;
        rx.recv()
            .map_err(|_| NftError::Library("the nft worker ended".into()))?
    }

    fn send(&self, req: Req) -> Result<(), NftError> {
        let tx = self
            .tx
            .lock()
            .map_err(|_| NftError::Library("the nft worker's lock is poisoned".into()))?;
        tx.send(req)
            .map_err(|_| NftError::Library("the nft worker ended".into()))
    }
}

fn join(netns: Option<&str>) -> Result<(), String> {
    let Some(ns) = netns else { return Ok(()) };
    let path = format!("/run/netns/{ns}");
    let f = File::open(&path).map_err(|e| format!("opening {path}: {e}"))?;
    nix::sched::setns(f, nix::sched::CloneFlags::CLONE_NEWNET)
        .map_err(|e| format!("joining network namespace {ns}: {e}"))
}

fn list(ctx: &mut Ctx, what: &str) -> Result<Option<String>, NftError> {
    match ctx.run(&format!("list {what}"), true) {
        Ok(json) => Ok(Some(json)),
        Err(stderr) if stderr.contains("No such file or directory") => Ok(None),
        Err(stderr) => Err(NftError::Failed {
            action: "list",
            stderr,
        }),
    }
}

impl Nft for NftLib {
    fn list(&self) -> Result<Option<String>, NftError> {
        self.list_json(format!("table ip {TABLE}"))
    }

    fn list_set(&self, set: &str) -> Result<Option<String>, NftError> {
        self.list_json(format!("set ip {TABLE} {set}"))
    }

    fn apply(&self, script: &str) -> Result<(), NftError> {
        let (tx, rx) = mpsc::channel();
        self.send(Req::Apply(script.to_string(), tx))?;
        rx.recv()
            .map_err(|_| NftError::Library("the nft worker ended".into()))?
    }
}

/// libnftables when it loads, else the `nft` binary.
pub fn best(netns: Option<&str>) -> Box<dyn Nft> {
    match NftLib::open(netns) {
        Ok(lib) => {
            debug!("programming nftables through libnftables");
            Box::new(lib)
        }
        Err(e) => {
            info!(error = %e, "libnftables unavailable; programming through the nft binary");
            Box::new(NftCommand {
                netns: netns.map(str::to_string),
            })
        }
    }
}

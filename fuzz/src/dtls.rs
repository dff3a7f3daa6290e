//! str0m's aws-lc-rs DTLS provider, except that dimpl's configuration is built once and shared.
//! Building it checks every key exchange and signature algorithm (about 1 ms, paid for every
//! `Rtc`, twice per WebRTC transport), which would otherwise be most of what the `ortc`,
//! `datagram` and `signaling` targets spend. [`install`] makes it str0m's process default before the first
//! `Rtc`; the engine's code is the same, and each DTLS instance is still dimpl's own.
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use str0m::crypto::dtls::{DtlsCert, DtlsImplError, DtlsInstance, DtlsOutput, DtlsProvider, DtlsVersion, ProtocolVersion};
use str0m::crypto::{CryptoError, CryptoProvider};

#[derive(Debug)]
struct SharedConfigDtls;

/// The configurations made so far, by MTU.
type Configs = std::sync::Mutex<Vec<(Option<usize>, Arc<dimpl::Config>)>>;

fn config(mtu: Option<usize>) -> Result<Arc<dimpl::Config>, CryptoError> {
    static CONFIGS: OnceLock<Configs> = OnceLock::new();
    let mut configs = CONFIGS.get_or_init(Default::default).lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, c)) = configs.iter().find(|(m, _)| *m == mtu) {
        return Ok(c.clone());
    }
    // As str0m-aws-lc-rs 0.7.0 (dtls.rs): ICE checks return routability, so no server cookie.
    let mut builder = dimpl::Config::builder().use_server_cookie(false);
    if let Some(mtu) = mtu {
        builder = builder.mtu(mtu);
    }
    let c = Arc::new(builder.build().map_err(|e| CryptoError::Other(format!("dimpl config: {e}")))?);
    configs.push((mtu, c.clone()));
    Ok(c)
}

impl DtlsProvider for SharedConfigDtls {
    fn generate_certificate(&self) -> Option<DtlsCert> {
        str0m::crypto::from_feature_flags().dtls_provider.generate_certificate()
    }

    fn new_dtls(
        &self,
        cert: &DtlsCert,
        now: Instant,
        version: DtlsVersion,
        mtu: Option<usize>,
    ) -> Result<Box<dyn DtlsInstance>, CryptoError> {
        let config = config(mtu)?;
        let dtls = match version {
            DtlsVersion::Dtls12 => dimpl::Dtls::new_12(config, cert.clone(), now),
            DtlsVersion::Dtls13 => dimpl::Dtls::new_13(config, cert.clone(), now),
            DtlsVersion::Auto => dimpl::Dtls::new_auto(config, cert.clone(), now),
            other => return Err(CryptoError::Other(format!("unsupported DTLS version: {other}"))),
        };
        Ok(Box::new(Instance(dtls)))
    }
}

struct Instance(dimpl::Dtls);

impl std::fmt::Debug for Instance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Instance")
    }
}

impl DtlsInstance for Instance {
    fn set_active(&mut self, active: bool) {
        self.0.set_active(active);
    }
    fn handle_packet(&mut self, packet: &[u8]) -> Result<(), DtlsImplError> {
        self.0.handle_packet(packet)
    }
    fn poll_output<'a>(&mut self, buf: &'a mut [u8]) -> DtlsOutput<'a> {
        self.0.poll_output(buf)
    }
    fn handle_timeout(&mut self, now: Instant) -> Result<(), DtlsImplError> {
        self.0.handle_timeout(now)
    }
    fn send_application_data(&mut self, data: &[u8]) -> Result<usize, DtlsImplError> {
        self.0.send_application_data(data)
    }
    fn is_active(&self) -> bool {
        self.0.is_active()
    }
    fn protocol_version(&self) -> Option<ProtocolVersion> {
        self.0.protocol_version()
    }
    fn is_closing(&self) -> bool {
        self.0.is_closing()
    }
    fn is_closed(&self) -> bool {
        self.0.is_closed()
    }
    fn close(&mut self) -> Result<(), DtlsImplError> {
        self.0.close()
    }
}

/// Makes the shared-configuration provider str0m's process default (once; before any `Rtc`).
pub fn install() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        static DTLS: SharedConfigDtls = SharedConfigDtls;
        let provider = CryptoProvider { dtls_provider: &DTLS, ..str0m::crypto::from_feature_flags() };
        provider.install_process_default();
        assert!(
            CryptoProvider::get_default().is_some_and(|p| std::ptr::eq(
                p.dtls_provider as *const dyn DtlsProvider as *const u8,
                &DTLS as *const SharedConfigDtls as *const u8
            )),
            "installed before any Rtc"
        );
    });
}

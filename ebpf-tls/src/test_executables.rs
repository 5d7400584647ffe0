//! Executables the unit tests scan, built here so the tests do not depend on how a package
//! was built (NodeSource's `node` links OpenSSL in; Debian's links the system libssl).

use std::{path::PathBuf, process::Command, sync::OnceLock};

/// A C program with OpenSSL linked into the executable: `gcc` against Debian's `libssl.a`
/// and `libcrypto.a` (libssl-dev, a test dependency `./dev.sh` installs; missing, the tests
/// using it fail). It calls the four functions the probes hook, so all four are in it.
pub fn static_openssl() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            // Under target/ (the build script's OUT_DIR), not /tmp: nothing left behind.
            // Built under a name of this process's, then renamed: another test process
            // building at the same moment never runs a half-written file.
            let dir = PathBuf::from(env!("OUT_DIR")).join("test-executables");
            std::fs::create_dir_all(&dir).unwrap();
            let pid = std::process::id();
            let src = dir.join(format!("client-{pid}.c"));
            std::fs::write(&src, CLIENT_C).unwrap();
            let building = dir.join(format!("client-{pid}"));
            let out = Command::new("gcc")
                .arg("-O1")
                .arg(&src)
                .arg("-o")
                .arg(&building)
                .args(["-Wl,-Bstatic", "-lssl", "-lcrypto", "-Wl,-Bdynamic"])
                .args(["-ldl", "-lpthread"])
                .output()
                .expect("gcc on PATH (./dev.sh installs it)");
            assert!(
                out.status.success(),
                "gcc with libssl.a (apt-get install libssl-dev): {}",
                String::from_utf8_lossy(&out.stderr)
            );
            std::fs::remove_file(&src).unwrap();
            let exe = dir.join("static-openssl-client");
            std::fs::rename(&building, &exe).unwrap();
            exe
        })
        .clone()
}

const CLIENT_C: &str = r#"#include <openssl/ssl.h>
int main(int argc, char **argv) {
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	SSL *ssl = SSL_new(ctx);
	char buf[16];
	size_t n = 0;
	if (argc > 5) {
		SSL_write(ssl, buf, 1);
		SSL_read(ssl, buf, sizeof buf);
		SSL_write_ex(ssl, buf, 1, &n);
		SSL_read_ex(ssl, buf, sizeof buf, &n);
	}
	SSL_free(ssl);
	SSL_CTX_free(ctx);
	return 0;
}
"#;

//! The page, built into the binary.
//!
//! observer/build.rs bundles ui/ (TypeScript, with esbuild from ui/node_modules) into OUT_DIR
//! at compile time, so the released binary needs nothing else and serves no file from disk.
//! `./dev.sh` installs Node.js and runs `npm ci` in ui/ before building; a `cargo build`
//! without ui/node_modules fails in build.rs with what to run.

/// The page.
pub static INDEX_HTML: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/ui/index.html"));
/// The bundled TypeScript (cytoscape and its dagre layout included).
pub static APP_JS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/ui/app.js"));
/// The page's styles.
pub static APP_CSS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/ui/app.css"));

//! Real runtime metadata for offline tests, extracted from `@polkadot/types-support` by
//! `tests/node/extract-metadata.mjs` into the target folder (never committed).

use cybergov::chain::tx::TxMaterial;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use subxt::Metadata;
use subxt::ext::codec::Decode;
use subxt::utils::H256;

/// The runtimes extracted.
pub const CHAINS: [&str; 4] = [
    "polkadot",
    "kusama",
    "asset-hub-polkadot",
    "asset-hub-kusama",
];

/// Runs the extractor once per test process; fails loudly when node or the npm packages are
/// missing.
pub fn metadata_dir() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        assert!(
            root.join("tests/node/node_modules/@polkadot/types-support")
                .is_dir(),
            "tests/node/node_modules is missing: run `npm ci --prefix tests/node` first"
        );
        // One folder per test binary: binaries run in parallel and must not race on the files.
        let exe = std::env::current_exe().expect("test binary path");
        let name = exe.file_stem().and_then(|s| s.to_str()).unwrap_or("tests");
        let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("chain-metadata-{name}"));
        let status = std::process::Command::new("node")
            .arg(root.join("tests/node/extract-metadata.mjs"))
            .arg(&out)
            .status()
            .expect("`node` must be installed to extract the test metadata");
        assert!(status.success(), "extract-metadata.mjs failed: {status}");
        out
    })
    .clone()
}

/// Signing material for `chain` at block 1,000,000 with a made-up genesis and block hash.
pub fn material(chain: &str) -> TxMaterial {
    let dir = metadata_dir();
    let bytes = std::fs::read(dir.join(format!("{chain}.scale"))).expect("metadata file");
    let versions: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.join(format!("{chain}.json"))).expect("versions"),
    )
    .expect("versions JSON");
    let metadata = Metadata::decode(&mut &bytes[..]).expect("real metadata decodes");
    TxMaterial {
        // The real chain's genesis where we know it, so that a network pinned to it accepts
        // the stand-in; a made-up one elsewhere.
        genesis_hash: match chain {
            "asset-hub-polkadot" => H256(hex32(cybergov::network::POLKADOT_GENESIS)),
            "asset-hub-kusama" => H256(hex32(cybergov::network::KUSAMA_GENESIS)),
            _ => H256([0x91; 32]),
        },
        spec_version: versions["specVersion"].as_u64().expect("specVersion") as u32,
        transaction_version: versions["transactionVersion"].as_u64().expect("txVersion") as u32,
        metadata: Arc::new(metadata),
        block_number: 1_000_000,
        block_hash: H256([0x42; 32]),
    }
}

/// The raw `.scale` bytes of `chain`.
pub fn metadata_bytes(chain: &str) -> Vec<u8> {
    std::fs::read(metadata_dir().join(format!("{chain}.scale"))).expect("metadata file")
}

fn hex32(h: &str) -> [u8; 32] {
    hex::decode(h.trim_start_matches("0x"))
        .expect("hex")
        .try_into()
        .expect("32 bytes")
}

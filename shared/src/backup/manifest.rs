//! The manifest: written after every object of a backup is stored and checked, it is the
//! backup's commit marker. A dump without a manifest is an incomplete upload, not a backup.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::options::{Compression, Level};
use crate::db::TableInfo;

/// Current manifest format. Readers refuse newer formats rather than guess.
/// 2: backup sets (`layout: set`), per-part table and rows, per-table rows and content hashes.
pub const FORMAT: u32 = 2;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    pub database: String,
    pub env: String,
    pub run_id: String,
    pub tag: Option<String>,
    pub engine: EngineInfo,
    pub compression: CompressionInfo,
    pub server_version: String,
    /// `single`: one object holding the whole dump; `set`: pre-data, data parts, post-data.
    pub layout: String,
    /// When the snapshot every part was read in was taken (native engine).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<Timestamp>,
    /// Schema objects by kind (`table`, `index`, `function`, …; native engine).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub counts: BTreeMap<String, usize>,
    /// The stored objects, in restore order.
    pub objects: Vec<ObjectEntry>,
    /// Stored (compressed) bytes, all objects.
    pub bytes: u64,
    /// Bytes of SQL before compression.
    pub uncompressed_bytes: u64,
    pub started: Timestamp,
    pub finished: Timestamp,
    pub duration_ms: u64,
    pub schema_only: bool,
    pub include_tables: Vec<String>,
    pub exclude_tables: Vec<String>,
    /// The tables with the catalog's estimates and, from the native engine, the rows dumped
    /// and the SHA-256 of their COPY text (what `verify` compares a restore against).
    pub tables: Vec<TableInfo>,
    /// What the engine changed to keep the backup restorable (e.g. a foreign key written
    /// `NOT VALID` because the rows it references were left out).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

impl Manifest {
    /// A backup of part of the database (schema only, or some tables): it never stands in for
    /// a full one, in a keep-policy or for `--latest`.
    pub fn is_partial(&self) -> bool {
        self.schema_only || !self.include_tables.is_empty() || !self.exclude_tables.is_empty()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EngineInfo {
    pub name: String,
    pub version: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompressionInfo {
    pub algorithm: Compression,
    /// The level asked for; with `adaptive`, the level no object is larger than (each object
    /// records the level it was written with).
    pub level: i32,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub adaptive: bool,
}

impl CompressionInfo {
    pub fn new(algorithm: Compression, level: Level) -> Self {
        match level {
            Level::Fixed(level) => CompressionInfo { algorithm, level, adaptive: false },
            Level::Auto => CompressionInfo { algorithm, level: algorithm.default_level(), adaptive: true },
        }
    }
}

/// One stored object of a backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectEntry {
    pub key: String,
    /// `dump` for a single-object backup; `pre-data`, `data`, `post-data` in a set.
    pub kind: String,
    /// The table a data part holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<String>,
    /// Rows in a data part.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows: Option<u64>,
    pub bytes: u64,
    pub uncompressed_bytes: u64,
    /// SHA-256 of the stored (compressed) bytes, hex.
    pub sha256: String,
    /// Multipart parts the object was uploaded in.
    pub parts: u32,
    /// The compression level it was written with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<i32>,
}

//! [`LoadError`]: what can go wrong loading, adopting, attaching or detaching the data plane.

use std::path::PathBuf;

use aya::{EbpfError, maps::MapError, programs::ProgramError};

use crate::dataplane::{conns::CountsError, conntrack, tables};

/// Errors loading or attaching the data plane.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The object could not be loaded (maps created, relocations applied).
    #[error("loading the BPF object: {source}")]
    Object {
        /// The cause.
        #[source]
        source: EbpfError,
    },
    /// A program is missing from the object or has another type.
    #[error("program {name} is missing from the BPF object or is not XDP")]
    MissingProgram {
        /// The program's name.
        name: &'static str,
    },
    /// The kernel's verifier rejected a program, or attaching failed.
    #[error("{action} program {name}: {source}")]
    Program {
        /// What was being done.
        action: &'static str,
        /// The program's name.
        name: &'static str,
        /// The cause.
        #[source]
        source: ProgramError,
    },
    /// A map is missing from the object.
    #[error("map {name} is missing from the BPF object")]
    MissingMap {
        /// The map's name.
        name: &'static str,
    },
    /// A map has an unexpected type or size.
    #[error("map {name}: {source}")]
    Map {
        /// The map's name.
        name: &'static str,
        /// The cause.
        #[source]
        source: MapError,
    },
    /// The number of CPUs could not be read (for per-CPU counters).
    #[error("reading {path}: {source}")]
    Cpus {
        /// The file read.
        path: &'static str,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A devmap write failed.
    #[error("map {name}: {source}")]
    DevMap {
        /// The map's name.
        name: &'static str,
        /// The cause.
        #[source]
        source: aya::maps::xdp::XdpMapError,
    },
    /// A pinned map was made by an lvs with another map layout.
    #[error(
        "the pinned map {path} has another layout ({pinned}) than this lvs needs ({wanted}); \
         it belongs to another lvs version: stop that data plane (or remove {dir}) first, or \
         use another instance name"
    )]
    Layout {
        /// The pinned map.
        path: PathBuf,
        /// Its layout.
        pinned: String,
        /// The layout this binary's object declares.
        wanted: String,
        /// The pin directory.
        dir: PathBuf,
    },
    /// The object could not be parsed (to read its map layout).
    #[error("parsing the BPF object: {source}")]
    Parse {
        /// The cause.
        #[source]
        source: aya_obj::ParseError,
    },
    /// A pin could not be read, written or removed.
    #[error("{action} {path}: {source}")]
    Pin {
        /// What was being done.
        action: &'static str,
        /// The pin.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The connection counts could not be mapped.
    #[error("mapping the connection counts")]
    Counts {
        /// Why.
        #[source]
        source: CountsError,
    },
    /// The pinned link could not be adopted or pinned.
    #[error("{action} the XDP link pinned at {path}: {detail}")]
    Link {
        /// What was being done.
        action: &'static str,
        /// The pin.
        path: PathBuf,
        /// What went wrong.
        detail: String,
    },
    /// The tables left by an earlier agent could not be read.
    #[error("adopting the pinned tables: {source}")]
    Adopt {
        /// The cause.
        #[source]
        source: tables::TablesError,
    },
    /// The interface does not exist.
    #[error("interface {name} does not exist (interfaces here: {present})")]
    NoInterface {
        /// The interface's name.
        name: String,
        /// The interfaces that do exist in this network namespace.
        present: String,
    },
    /// Another XDP program is attached to the interface.
    #[error(
        "attaching to {interface}: XDP program {program} (id {prog_id}, {mode} mode) is \
         already attached there by something else; detach it first (`ip link set dev \
         {interface} xdp off`, or stop what attached it)"
    )]
    Occupied {
        /// The interface.
        interface: String,
        /// The attached program's name (`?` when it cannot be read).
        program: String,
        /// Its id.
        prog_id: u32,
        /// How it is attached.
        mode: &'static str,
    },
    /// A restart asked for a connection table too small for the live flows of the pinned one.
    #[error(
        "the pinned connection table in {dir} ({from} flows) holds {live} live flows, and {unfit} \
         of them do not fit a table of {to} flows (connection_table_size): their buckets would \
         be full. Nothing was changed; ask for a larger connection_table_size, or stop the \
         running data plane (cleanstop) to start with an empty table"
    )]
    Resize {
        /// The pin directory.
        dir: PathBuf,
        /// The pinned table's size.
        from: u32,
        /// The size asked for.
        to: u32,
        /// Live flows in the pinned table.
        live: u64,
        /// How many of them would not fit.
        unfit: u64,
    },
    /// The connection table could not be read or written.
    #[error("{source}")]
    Conntrack {
        /// The cause.
        #[source]
        source: conntrack::ConntrackError,
    },
    /// No random seed for the connection table could be drawn.
    #[error("drawing a random seed for the connection table: {source}")]
    Random {
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

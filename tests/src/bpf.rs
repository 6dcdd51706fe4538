//! Small eBPF programs for the benchmarks, assembled here and loaded with bpf(2), so that
//! benchmark code stays out of the product's object: the instruction encoding, the few
//! bpf(2) commands the benchmarks use, and the restoring wrapper ([`restore_prog`]) that lets
//! a program which changes its frame run on it again and again with BPF_PROG_TEST_RUN.

use std::os::fd::{FromRawFd as _, OwnedFd, RawFd};

use anyhow::{Result, bail};

/// One eBPF instruction.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct Insn {
    code: u8,
    regs: u8,
    off: i16,
    imm: i32,
}

impl Insn {
    /// The opcode.
    pub fn code(&self) -> u8 {
        self.code
    }

    /// The destination register.
    pub fn dst(&self) -> u8 {
        self.regs & 0x0f
    }

    /// The source register.
    pub fn src(&self) -> u8 {
        self.regs >> 4
    }

    /// The offset.
    pub fn off(&self) -> i16 {
        self.off
    }

    /// The immediate.
    pub fn imm(&self) -> i32 {
        self.imm
    }
}

/// An instruction: opcode, destination and source registers, offset, immediate.
pub const fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: dst | (src << 4),
        off,
        imm,
    }
}

/// `dst = *(u8 *)(src + off)`.
pub const LDX_B: u8 = 0x71;
/// `dst = *(u16 *)(src + off)`.
pub const LDX_H: u8 = 0x69;
/// `dst = *(u32 *)(src + off)`.
pub const LDX_W: u8 = 0x61;
/// `dst = *(u64 *)(src + off)`.
pub const LDX_DW: u8 = 0x79;
/// `*(u8 *)(dst + off) = src`.
pub const STX_B: u8 = 0x73;
/// `*(u16 *)(dst + off) = src`.
pub const STX_H: u8 = 0x6b;
/// `*(u32 *)(dst + off) = src`.
pub const STX_W: u8 = 0x63;
/// `*(u64 *)(dst + off) = src`.
pub const STX_DW: u8 = 0x7b;
/// `*(u32 *)(dst + off) = imm`.
pub const ST_W: u8 = 0x62;
/// `dst = imm`.
pub const MOV_K: u8 = 0xb7;
/// `dst = src`.
pub const MOV_X: u8 = 0xbf;
/// `dst += imm`.
pub const ADD_K: u8 = 0x07;
/// `dst -= src`.
pub const SUB_X: u8 = 0x1f;
/// `dst >>= imm`.
pub const RSH_K: u8 = 0x77;
/// `dst <<= imm`.
pub const LSH_K: u8 = 0x67;
/// `dst &= imm`.
pub const AND_K: u8 = 0x57;
/// `dst |= src`.
pub const OR_X: u8 = 0x4f;
/// `if dst > src goto +off` (unsigned).
pub const JGT_X: u8 = 0x2d;
/// `if dst == imm goto +off`.
pub const JEQ_K: u8 = 0x15;
/// `if dst != imm goto +off`.
pub const JNE_K: u8 = 0x55;
/// Call helper `imm`.
pub const CALL: u8 = 0x85;
/// Return `r0`.
pub const EXIT: u8 = 0x95;
/// 64-bit immediate load (two instructions).
pub const LD_IMM64: u8 = 0x18;
/// [`LD_IMM64`]'s source register for a map's fd.
pub const PSEUDO_MAP_FD: u8 = 1;
/// bpf_map_lookup_elem.
pub const FN_MAP_LOOKUP: i32 = 1;
/// bpf_get_smp_processor_id.
pub const FN_SMP_PROCESSOR_ID: i32 = 8;
/// bpf_tail_call.
pub const FN_TAIL_CALL: i32 = 12;
/// bpf_xdp_adjust_head.
pub const FN_XDP_ADJUST_HEAD: i32 = 44;

/// `BPF_MAP_TYPE_ARRAY`.
pub const MAP_ARRAY: u32 = 2;
/// `BPF_MAP_TYPE_PROG_ARRAY`.
pub const MAP_PROG_ARRAY: u32 = 3;
/// `BPF_MAP_TYPE_PERCPU_ARRAY`.
pub const MAP_PERCPU_ARRAY: u32 = 6;

/// XDP_PASS.
pub const XDP_PASS: i32 = 2;

/// `dst` = the map of fd `fd`.
pub fn ld_map(dst: u8, fd: RawFd) -> [Insn; 2] {
    [
        insn(LD_IMM64, dst, PSEUDO_MAP_FD, 0, fd),
        insn(0, 0, 0, 0, 0),
    ]
}

/// bpf(2) command `cmd` with the attribute words `attr`: its return value.
pub fn bpf(cmd: u32, attr: &mut [u64]) -> Result<i64> {
    // SAFETY: `attr` is a zero-padded bpf_attr of the command's layout, alive for the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr.as_mut_ptr(),
            std::mem::size_of_val(attr) as u32,
        )
    };
    if r < 0 {
        bail!("bpf({cmd}): {}", std::io::Error::last_os_error());
    }
    Ok(r)
}

/// The instructions of the loaded program `prog` as the verifier left them (its "xlated"
/// code: BPF_OBJ_GET_INFO_BY_FD).
pub fn xlated(prog: RawFd) -> Result<Vec<Insn>> {
    // struct bpf_prog_info: xlated_prog_len at byte 20, xlated_prog_insns at byte 32.
    let mut info = [0u64; 32];
    let get = |info: &mut [u64; 32]| {
        let mut attr = [0u64; 16];
        attr[0] = prog as u32 as u64 | ((std::mem::size_of_val(info) as u64) << 32);
        attr[1] = info.as_mut_ptr() as u64;
        bpf(15, &mut attr)
    };
    get(&mut info)?;
    let len = (info[2] >> 32) as usize;
    let mut insns = vec![insn(0, 0, 0, 0, 0); len / std::mem::size_of::<Insn>()];
    info = [0u64; 32];
    info[2] = (len as u64) << 32;
    info[4] = insns.as_mut_ptr() as u64;
    get(&mut info)?;
    if len == 0 || (info[2] >> 32) as usize != len {
        bail!("the kernel gave no translated instructions of program fd {prog}");
    }
    Ok(insns)
}

/// Attribute words from 32-bit fields, in order.
pub fn words(pairs: &[u32]) -> [u64; 16] {
    let mut a = [0u64; 16];
    for (i, p) in pairs.chunks(2).enumerate() {
        a[i] = u64::from(p[0]) | (u64::from(*p.get(1).unwrap_or(&0)) << 32);
    }
    a
}

/// The file descriptor bpf(2) returned (`r`), owned.
pub fn fd(r: i64) -> OwnedFd {
    // SAFETY: a new file descriptor bpf(2) returned, owned from here on.
    unsafe { OwnedFd::from_raw_fd(r as RawFd) }
}

/// A map of `map_type` with 4-byte keys, `value`-byte values and `entries` entries.
pub fn map_create(map_type: u32, value: u32, entries: u32) -> Result<OwnedFd> {
    let mut attr = words(&[map_type, 4, value, entries]);
    Ok(fd(bpf(0, &mut attr)?))
}

/// Writes `value` at `key` of `map`.
pub fn map_update(map: RawFd, key: u32, value: &[u8]) -> Result<()> {
    let key = key.to_ne_bytes();
    let mut attr = [0u64; 16];
    attr[0] = map as u64;
    attr[1] = key.as_ptr() as u64;
    attr[2] = value.as_ptr() as u64;
    bpf(2, &mut attr)?;
    Ok(())
}

/// The sum over the CPUs of slot 0 of the per-CPU `u64` array `map`.
pub fn percpu_sum(map: RawFd, cpus: usize) -> Result<u64> {
    Ok(percpu_get(map, 0, 8, cpus)?
        .iter()
        .map(|v| u64::from_ne_bytes(v[..8].try_into().expect("8 bytes")))
        .sum())
}

/// The values of `key` of the per-CPU map `map` (values of `value_size` bytes) on each of
/// `cpus` CPUs (the possible CPUs), as raw bytes.
pub fn percpu_get(map: RawFd, key: u32, value_size: usize, cpus: usize) -> Result<Vec<Vec<u8>>> {
    let stride = value_size.div_ceil(8) * 8;
    let key = key.to_ne_bytes();
    let mut values = vec![0u8; stride * cpus];
    let mut attr = [0u64; 16];
    attr[0] = map as u64;
    attr[1] = key.as_ptr() as u64;
    attr[2] = values.as_mut_ptr() as u64;
    bpf(1, &mut attr)?;
    Ok(values
        .chunks(stride)
        .map(|v| v[..value_size].to_vec())
        .collect())
}

/// Writes `values` (one per possible CPU, each the map's value size) at `key` of the per-CPU
/// map `map`.
pub fn percpu_set(map: RawFd, key: u32, values: &[Vec<u8>]) -> Result<()> {
    let stride = values.first().map_or(0, |v| v.len().div_ceil(8) * 8);
    let mut all = vec![0u8; stride * values.len()];
    for (chunk, v) in all.chunks_mut(stride).zip(values) {
        chunk[..v.len()].copy_from_slice(v);
    }
    map_update(map, key, &all)
}

/// Loads `insns` as an XDP program (`name` only names it in errors, with the verifier's log).
pub fn prog_load(name: &str, insns: &[Insn]) -> Result<OwnedFd> {
    let license = c"GPL";
    let mut log = vec![0u8; 65536];
    let mut attr = [0u64; 16];
    // prog_type XDP (6), insn_cnt; insns; license; log_level, log_size; log_buf.
    attr[0] = 6 | ((insns.len() as u64) << 32);
    attr[1] = insns.as_ptr() as u64;
    attr[2] = license.as_ptr() as u64;
    attr[3] = 1 | ((log.len() as u64) << 32);
    attr[4] = log.as_mut_ptr() as u64;
    // expected_attach_type BPF_XDP, as aya loads lvs's program: a program array holds
    // programs of one kind.
    attr[8] = 37 << 32;
    match bpf(5, &mut attr) {
        Ok(r) => Ok(fd(r)),
        Err(e) => {
            let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
            bail!("{name}: {e}\n{}", String::from_utf8_lossy(&log[..end]))
        }
    }
}

/// What one BPF_PROG_TEST_RUN call gave.
#[derive(Debug)]
pub struct TestRun {
    /// The verdict of the last run.
    pub verdict: u32,
    /// The mean ns a run (the kernel's figure).
    pub duration_ns: u32,
    /// The frame as the last run left it.
    pub out: Vec<u8>,
}

/// BPF_PROG_TEST_RUN of `prog` on `frame`, `repeat` times (received on the loopback
/// interface, as aya's test runs without a context are).
pub fn test_run(prog: RawFd, frame: &[u8], repeat: u32) -> Result<TestRun> {
    test_run_on(prog, frame, repeat, None)
}

/// The XDP context of a test run of `frame` received on interface `ingress` (of this
/// thread's network namespace), queue 0: `struct xdp_md` (data, data_end, data_meta,
/// ingress_ifindex, rx_queue_index, egress_ifindex), as BPF_PROG_TEST_RUN takes it.
pub fn xdp_md(frame: &[u8], ingress: u32) -> [u32; 6] {
    [0, frame.len() as u32, 0, ingress, 0, 0]
}

/// [`test_run`], the frame received on interface `ingress` if given (its index in this
/// thread's network namespace), else on the loopback interface.
pub fn test_run_on(
    prog: RawFd,
    frame: &[u8],
    repeat: u32,
    ingress: Option<u32>,
) -> Result<TestRun> {
    let mut out = vec![0u8; frame.len() + 256];
    let ctx = ingress.map(|i| xdp_md(frame, i));
    let mut attr = [0u64; 16];
    attr[0] = prog as u32 as u64; // prog_fd, retval
    attr[1] = frame.len() as u64 | ((out.len() as u64) << 32); // data_size_in, data_size_out
    attr[2] = frame.as_ptr() as u64;
    attr[3] = out.as_mut_ptr() as u64;
    attr[4] = u64::from(repeat); // repeat, duration
    if let Some(ctx) = &ctx {
        attr[5] = size_of_val(ctx) as u64; // ctx_size_in, ctx_size_out
        attr[6] = ctx.as_ptr() as u64; // ctx_in
    }
    bpf(10, &mut attr)?;
    out.truncate((attr[1] >> 32) as usize);
    Ok(TestRun {
        verdict: (attr[0] >> 32) as u32,
        duration_ns: (attr[4] >> 32) as u32,
        out,
    })
}

/// The restoring wrapper: puts the frame back as it was, then tail-calls slot 0 of the
/// program array `progs`.
///
/// BPF_PROG_TEST_RUN with `repeat` (and live frames alike) runs the program again on the
/// frame as the previous run left it: moved data pointer (an encapsulation's
/// `bpf_xdp_adjust_head`) and the program's writes included. The wrapper first moves the
/// frame's start back so that it is `len` bytes long again (`bpf_xdp_adjust_head` by the
/// difference, called every time, 0 included, so that its cost is the same for every
/// program wrapped; only the start moves, as only the start of the frames measured does),
/// then writes its `len` original bytes from slot 0 of the array `frame` (values of at least
/// `len` bytes, rounded up to 8). Anything it cannot do gives XDP_PASS.
pub fn restore_prog(frame: RawFd, progs: RawFd, len: usize) -> Vec<Insn> {
    wrapper_prog(frame, progs, len, None)
}

/// `r0` = slot 0 of the array map `map` (its key, 0, at `r10 - 4`), or a jump to the
/// wrapper's XDP_PASS (patched by [`wrapper_prog`]) if there is none.
fn lookup_slot0(map: RawFd) -> Vec<Insn> {
    let mut p = ld_map(1, map).to_vec();
    p.extend([
        insn(MOV_X, 2, 10, 0, 0),
        insn(ADD_K, 2, 0, 0, -4),
        insn(CALL, 0, 0, 0, FN_MAP_LOOKUP),
        insn(JEQ_K, 0, 0, 0, 0), // -> pass (patched)
    ]);
    p
}

/// The restoring wrapper, and with `fresh` (an array map of one `u64`, the count of runs so
/// far), one that also gives each run a 5-tuple no run before had ([`Fresh`]): after the frame
/// is restored, the count plus one gives the TCP source port (its low 16 bits) and the last two
/// bytes of the IPv4 source address (15 more bits); the IPv4 ID takes off what the address
/// adds, so the header checksum holds if the frame's ID is 0xffff and its address ends in
/// two zero bytes ([`fresh_template`]).
fn wrapper_prog(frame: RawFd, progs: RawFd, len: usize, fresh: Option<RawFd>) -> Vec<Insn> {
    let len_i = i32::try_from(len).expect("a frame's length");
    let mut p = vec![insn(MOV_X, 6, 1, 0, 0), insn(ST_W, 10, 0, -4, 0)];
    p.extend(lookup_slot0(frame));
    p.extend([
        insn(MOV_X, 7, 0, 0, 0),
        // The difference of the frame's length now and `len`: what the start moves by.
        insn(LDX_W, 2, 6, 0, 0),
        insn(LDX_W, 3, 6, 4, 0),
        insn(SUB_X, 3, 2, 0, 0),
        insn(ADD_K, 3, 0, 0, -len_i),
        insn(MOV_X, 1, 6, 0, 0),
        insn(MOV_X, 2, 3, 0, 0),
        insn(CALL, 0, 0, 0, FN_XDP_ADJUST_HEAD),
        insn(JNE_K, 0, 0, 0, 0), // -> pass (patched)
        insn(LDX_W, 2, 6, 0, 0),
        insn(LDX_W, 3, 6, 4, 0),
        insn(MOV_X, 4, 2, 0, 0),
        insn(ADD_K, 4, 0, 0, len_i),
        insn(JGT_X, 4, 3, 0, 0), // -> pass (patched)
    ]);
    let mut off = 0usize;
    while off < len {
        let (ld, st, size) = match len - off {
            8.. => (LDX_DW, STX_DW, 8),
            4..=7 => (LDX_W, STX_W, 4),
            2..=3 => (LDX_H, STX_H, 2),
            _ => (LDX_B, STX_B, 1),
        };
        let o = off as i16;
        p.extend([insn(ld, 5, 7, o, 0), insn(st, 2, 5, o, 0)]);
        off += size;
    }
    if let Some(count) = fresh {
        p.push(insn(MOV_X, 8, 2, 0, 0));
        p.extend(lookup_slot0(count));
        p.extend([
            insn(LDX_DW, 3, 0, 0, 0),
            insn(ADD_K, 3, 0, 0, 1),
            insn(STX_DW, 0, 3, 0, 0),
            // The TCP source port.
            insn(STX_H, 8, 3, 34, 0),
            // The source address's last two bytes, and the IPv4 ID that balances them.
            insn(MOV_X, 4, 3, 0, 0),
            insn(RSH_K, 4, 0, 0, 16),
            insn(AND_K, 4, 0, 0, 0x7fff),
            insn(STX_H, 8, 4, 28, 0),
            insn(MOV_K, 5, 0, 0, 0xffff),
            insn(SUB_X, 5, 4, 0, 0),
            insn(STX_H, 8, 5, 18, 0),
        ]);
    }
    p.push(insn(MOV_X, 1, 6, 0, 0));
    p.extend(ld_map(2, progs));
    p.extend([insn(MOV_K, 3, 0, 0, 0), insn(CALL, 0, 0, 0, FN_TAIL_CALL)]);
    let pass = p.len();
    p.extend([insn(MOV_K, 0, 0, 0, XDP_PASS), insn(EXIT, 0, 0, 0, 0)]);
    // Point the forward jumps (offset 0 so far) at `pass`.
    for (i, ins) in p.iter_mut().enumerate() {
        if matches!(ins.code, JEQ_K | JNE_K | JGT_X) && ins.off == 0 {
            ins.off = (pass - i - 1) as i16;
        }
    }
    p
}

/// The template of [`Fresh`]'s frames: `frame` (Ethernet, IPv4 without options, TCP) with
/// the last two bytes of its source address zero and IPv4 ID 0xffff, its header checksum
/// recomputed.
pub fn fresh_template(frame: &[u8]) -> Vec<u8> {
    let mut f = frame.to_vec();
    f[28..30].copy_from_slice(&[0, 0]);
    f[18..20].copy_from_slice(&[0xff, 0xff]);
    crate::packet::fix_ipv4_checksum(&mut f, 14);
    f
}

/// A program run through the restoring wrapper on one frame whose 5-tuple is new at every
/// run (see [`wrapper_prog`]): a new flow's cost with the program's code and its maps'
/// small tables warm, as on a director taking many new connections a second.
pub struct Fresh {
    /// The wrapper (what to test-run).
    pub prog: OwnedFd,
    _frame: OwnedFd,
    _progs: OwnedFd,
    count: OwnedFd,
}

impl Fresh {
    /// `target` (an XDP program's fd) on [`fresh_template`] of `frame`, a new source port and
    /// address at every run. Runs go on counting from `start` (a 5-tuple is not seen twice
    /// until 2^31 runs have passed).
    pub fn new(name: &str, target: RawFd, frame: &[u8], start: u64) -> Result<Self> {
        use std::os::fd::AsRawFd as _;
        let frame = fresh_template(frame);
        let (frame_map, progs) = frame_and_target(&frame, target)?;
        let count = map_create(MAP_ARRAY, 8, 1)?;
        map_update(count.as_raw_fd(), 0, &start.to_ne_bytes())?;
        let prog = prog_load(
            name,
            &wrapper_prog(
                frame_map.as_raw_fd(),
                progs.as_raw_fd(),
                frame.len(),
                Some(count.as_raw_fd()),
            ),
        )?;
        Ok(Fresh {
            prog,
            _frame: frame_map,
            _progs: progs,
            count,
        })
    }

    /// Starts the runs' count again at `start`: the next runs give the 5-tuples they gave
    /// from there before.
    pub fn restart(&self, start: u64) -> Result<()> {
        use std::os::fd::AsRawFd as _;
        map_update(self.count.as_raw_fd(), 0, &start.to_ne_bytes())
    }
}

/// The maps every wrapper holds: slot 0 of an array with `frame` (its length rounded up to
/// 8), and a program array whose slot 0 is `target`.
fn frame_and_target(frame: &[u8], target: RawFd) -> Result<(OwnedFd, OwnedFd)> {
    use std::os::fd::AsRawFd as _;
    let size = frame.len().div_ceil(8) * 8;
    let frame_map = map_create(MAP_ARRAY, size as u32, 1)?;
    let mut value = frame.to_vec();
    value.resize(size, 0);
    map_update(frame_map.as_raw_fd(), 0, &value)?;
    let progs = map_create(MAP_PROG_ARRAY, 4, 1)?;
    map_update(progs.as_raw_fd(), 0, &target.to_ne_bytes())?;
    Ok((frame_map, progs))
}

/// A program run through [`restore_prog`] on one frame: the wrapper, and the maps it holds.
pub struct Restoring {
    /// The wrapper (what to test-run).
    pub prog: OwnedFd,
    _frame: OwnedFd,
    _progs: OwnedFd,
}

impl Restoring {
    /// `target` (an XDP program's fd) on `frame`, restored before each run.
    pub fn new(name: &str, target: RawFd, frame: &[u8]) -> Result<Self> {
        use std::os::fd::AsRawFd as _;
        let (frame_map, progs) = frame_and_target(frame, target)?;
        let prog = prog_load(
            name,
            &restore_prog(frame_map.as_raw_fd(), progs.as_raw_fd(), frame.len()),
        )?;
        Ok(Restoring {
            prog,
            _frame: frame_map,
            _progs: progs,
        })
    }
}

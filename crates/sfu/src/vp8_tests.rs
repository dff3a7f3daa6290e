use super::*;

/// A packet to build: descriptor fields and the frame tag's P bit (keyframe = P 0).
#[derive(Clone, Copy, Default)]
struct Pkt {
    pic: Option<PictureId>,
    tl0: Option<u8>,
    tid: Option<u8>,
    y: bool,
    key_idx: Option<u8>,
    start: bool,
    pid: u8,
    key: bool,
}

fn build(p: Pkt) -> Vec<u8> {
    let ext = u8::from(p.pic.is_some()) << 7
        | u8::from(p.tl0.is_some()) << 6
        | u8::from(p.tid.is_some()) << 5
        | u8::from(p.key_idx.is_some()) << 4;
    let mut out = vec![u8::from(ext != 0) << 7 | u8::from(p.start) << 4 | p.pid];
    if ext != 0 {
        out.push(ext);
    }
    match p.pic {
        Some(PictureId { value, long: true }) => out.extend_from_slice(&(value | 0x8000).to_be_bytes()),
        Some(PictureId { value, long: false }) => out.push(value as u8),
        None => {}
    }
    out.extend(p.tl0);
    if p.tid.is_some() || p.key_idx.is_some() {
        out.push(p.tid.unwrap_or(0) << 6 | u8::from(p.y) << 5 | p.key_idx.unwrap_or(0));
    }
    out.extend_from_slice(&[if p.key { 0x10 } else { 0x11 }, 0xaa, 0xbb]);
    out
}

/// The first packet of a frame with a 15-bit picture id.
fn frame(pic: u16, tl0: u8, tid: u8) -> Pkt {
    Pkt { pic: Some(PictureId { value: pic, long: true }), tl0: Some(tl0), tid: Some(tid), start: true, ..Pkt::default() }
}

fn sync(p: Pkt) -> Pkt {
    Pkt { y: true, ..p }
}

fn key(p: Pkt) -> Pkt {
    Pkt { key: true, y: true, ..p }
}

/// A later packet of the same frame.
fn cont(p: Pkt) -> Pkt {
    Pkt { start: false, key: false, ..p }
}

/// Some((picture id, tl0)) as sent, or None if dropped.
type Sent = Option<(u16, Option<u8>)>;

/// Runs a packet through the munger.
fn run(m: &mut Vp8Munger, p: Pkt, max_temporal: u8) -> Sent {
    let mut buf = build(p);
    let (verdict, _) = m.process(&mut buf, max_temporal).unwrap();
    let d = parse(&buf).unwrap();
    match verdict {
        Vp8Verdict::Forward => Some((d.picture_id.map_or(u16::MAX, |p| p.value), d.tl0_pic_idx)),
        Vp8Verdict::Drop => {
            assert_eq!(buf, build(p), "a dropped packet is left alone");
            None
        }
    }
}

#[test]
fn parses_every_flag_combination() {
    for bits in 0..64u8 {
        let (i, l, t, k, long, s) = (bits & 1 != 0, bits & 2 != 0, bits & 4 != 0, bits & 8 != 0, bits & 16 != 0, bits & 32 != 0);
        let p = Pkt {
            pic: i.then_some(PictureId { value: if long { 0x1234 } else { 0x55 }, long }),
            tl0: l.then_some(0xc3),
            tid: t.then_some(2),
            y: t,
            key_idx: k.then_some(0x15),
            start: s,
            pid: if s { 0 } else { 5 },
            key: true,
        };
        let buf = build(p);
        let d = parse(&buf).unwrap();
        let len = 1 + usize::from(i || l || t || k) + usize::from(i) * if long { 2 } else { 1 } + usize::from(l) + usize::from(t || k);
        let want = Vp8Descriptor {
            start_of_partition: s,
            partition_index: if s { 0 } else { 5 },
            picture_id: p.pic,
            tl0_pic_idx: p.tl0,
            tid: p.tid,
            layer_sync: t,
            key_idx: p.key_idx,
            header_len: len,
            keyframe: s,
        };
        assert_eq!(d, want, "bits {bits:06b}");
        assert_eq!(buf[d.header_len], 0x10);
        // Truncated at every length; a descriptor alone has no payload.
        for cut in 0..len {
            assert_eq!(parse(&buf[..cut]), Err(Vp8Error::Truncated), "bits {bits:06b} cut {cut}");
        }
        assert_eq!(parse(&buf[..len]), Err(Vp8Error::NoPayload));
    }
}

#[test]
fn reserved_bits_are_ignored_and_y_needs_t() {
    let d = parse(&[0xf0 | 0x08, 0x8f, 0x7f, 0x9d]).unwrap();
    assert_eq!(d.picture_id, Some(PictureId { value: 0x7f, long: false }));
    assert_eq!((d.header_len, d.keyframe), (3, false), "first payload byte 0x9d: P = 1");
    // K without T: the byte's TID and Y bits mean nothing.
    let d = parse(&[0x90, 0x10, 0xff, 0x00]).unwrap();
    assert_eq!((d.tid, d.layer_sync, d.key_idx, d.keyframe), (None, false, Some(0x1f), true));
}

#[test]
fn keyframes_are_detected_on_the_first_packet_only() {
    let k = key(frame(1, 1, 0));
    assert!(parse(&build(k)).unwrap().keyframe);
    assert!(!parse(&build(Pkt { key: false, ..k })).unwrap().keyframe, "P = 1");
    assert!(!parse(&build(Pkt { start: false, ..k })).unwrap().keyframe, "S = 0");
    assert!(!parse(&build(Pkt { pid: 1, ..k })).unwrap().keyframe, "PID 1");
    assert!(parse(&[0x10, 0x00]).unwrap().keyframe, "no extensions");
}

fn rewrite(buf: &mut [u8], picture_id: u16, tl0_pic_idx: u8) {
    let d = parse(buf).unwrap();
    write(buf, &d, picture_id, tl0_pic_idx);
}

#[test]
fn writes_7_and_15_bit_ids_in_place() {
    let long = frame(0x1234, 9, 1);
    let mut buf = build(long);
    rewrite(&mut buf, 0x8000 + 0x0abc, 77);
    assert_eq!(buf, build(Pkt { pic: Some(PictureId { value: 0x0abc, long: true }), tl0: Some(77), ..long }));
    let short = Pkt { pic: Some(PictureId { value: 5, long: false }), ..long };
    let mut buf = build(short);
    rewrite(&mut buf, 300, 78);
    assert_eq!(buf, build(Pkt { pic: Some(PictureId { value: 300 % 128, long: false }), tl0: Some(78), ..short }));
    // Fields the packet lacks stay as they are.
    let bare = Pkt { pic: None, tl0: None, ..long };
    let mut buf = build(bare);
    rewrite(&mut buf, 1, 2);
    assert_eq!(buf, build(bare));
    let tl0_only = Pkt { pic: None, ..long };
    let mut buf = build(tl0_only);
    rewrite(&mut buf, 1, 2);
    assert_eq!(buf, build(Pkt { tl0: Some(2), ..tl0_only }));
    // A descriptor that does not fit the buffer: no panic.
    write(&mut [0x90, 0x80], &parse(&build(long)).unwrap(), 1, 2);
}

#[test]
fn switch_keeps_ids_and_tl0_continuous() {
    let mut m = Vp8Munger::new();
    assert_eq!(run(&mut m, key(frame(1000, 50, 0)), 2), Some((1000, Some(50))), "nothing sent yet: as-is");
    assert_eq!(run(&mut m, frame(1001, 51, 0), 2), Some((1001, Some(51))));
    m.switch_stream();
    assert_eq!(run(&mut m, key(frame(20000, 7, 0)), 2), Some((1002, Some(52))));
    assert_eq!(run(&mut m, cont(frame(20000, 7, 0)), 2), Some((1002, Some(52))), "same frame, same id");
    assert_eq!(run(&mut m, frame(20001, 8, 0), 2), Some((1003, Some(53))));
    m.switch_stream();
    let short = |v: u16, tl0| Pkt { pic: Some(PictureId { value: v, long: false }), ..frame(0, tl0, 0) };
    assert_eq!(run(&mut m, key(short(3, 200)), 2), Some((1004 % 128, Some(54))), "7-bit stream: mod 128");
    assert_eq!(run(&mut m, short(4, 201), 2), Some((1005 % 128, Some(55))));
    m.switch_stream();
    assert_eq!(run(&mut m, key(frame(5, 9, 0)), 2), Some((1006, Some(56))), "back to 15 bits");
}

#[test]
fn l1t3_temporal_dropping() {
    let tids = [0, 2, 1, 2, 0, 2, 1, 2];
    for (max, passing) in [(0, vec![0, 4]), (1, vec![0, 2, 4, 6]), (2, (0..8).collect::<Vec<_>>())] {
        let mut m = Vp8Munger::new();
        let mut sent = Vec::new();
        for round in 0..3u16 {
            for (i, &tid) in tids.iter().enumerate() {
                let n = round * 8 + i as u16;
                let p = frame(100 + n, (n / 4) as u8, tid);
                let p = if n == 0 { key(p) } else { p };
                let first = run(&mut m, p, max);
                assert_eq!(first, run(&mut m, cont(p), max), "both packets of a frame alike");
                assert_eq!(first.is_some(), passing.contains(&i), "max {max} frame {n}");
                if let Some((pic, tl0)) = first {
                    assert_eq!(tl0, Some((n / 4) as u8), "TL0PICIDX untouched");
                    sent.push(pic);
                }
            }
        }
        assert_eq!(sent, (100..100 + sent.len() as u16).collect::<Vec<_>>(), "max {max}: continuous ids");
        assert_eq!(m.current_temporal(), Some(max));
    }
}

#[test]
fn up_switch_waits_for_a_sync_frame_and_down_switch_is_immediate() {
    let mut m = Vp8Munger::new();
    assert_eq!(run(&mut m, key(frame(0, 0, 0)), 0), Some((0, Some(0))));
    assert_eq!(m.current_temporal(), Some(0));
    let mut buf = build(frame(1, 0, 2));
    assert_eq!(m.process(&mut buf, 2), Ok((Vp8Verdict::Drop, 0)), "TID 2 without Y");
    assert_eq!(run(&mut m, frame(2, 0, 1), 2), None, "TID 1 without Y");
    assert_eq!(run(&mut m, frame(3, 0, 2), 2), None);
    assert_eq!(run(&mut m, frame(4, 1, 0), 2), Some((1, Some(1))));
    assert_eq!(run(&mut m, cont(sync(frame(5, 1, 2))), 2), None, "Y counts at a frame start only");
    assert_eq!(run(&mut m, sync(frame(6, 1, 1)), 2), Some((2, Some(1))), "Y on TID 1: up to 1");
    assert_eq!(m.current_temporal(), Some(1));
    assert_eq!(run(&mut m, frame(7, 1, 2), 2), None);
    assert_eq!(run(&mut m, sync(frame(9, 2, 2)), 2), Some((4, Some(2))), "Y on TID 2: up to 2 (frame 8 lost: its id kept)");
    assert_eq!(run(&mut m, frame(10, 2, 1), 2), Some((5, Some(2))));
    // Down: mid-frame packets keep the layer, the next frame start drops it.
    let mut buf = build(cont(frame(10, 2, 1)));
    assert_eq!(m.process(&mut buf, 0).unwrap(), (Vp8Verdict::Forward, 2));
    let mut buf = build(frame(11, 2, 2));
    assert_eq!(m.process(&mut buf, 0).unwrap(), (Vp8Verdict::Drop, 0));
    assert_eq!(run(&mut m, frame(12, 3, 0), 0), Some((6, Some(3))));
    // A keyframe allows any layer at once.
    assert_eq!(run(&mut m, key(frame(13, 4, 0)), 2), Some((7, Some(4))));
    assert_eq!(m.current_temporal(), Some(2));
    assert_eq!(run(&mut m, frame(14, 4, 2), 2), Some((8, Some(4))));
}

#[test]
fn late_packets_get_their_frames_fate() {
    let mut m = Vp8Munger::new();
    let tids = [0, 2, 1, 2, 0, 2, 1, 2];
    let mut out = Vec::new();
    for (n, &tid) in tids.iter().enumerate() {
        out.push(run(&mut m, frame(500 + n as u16, 0, tid), 1));
    }
    assert_eq!(out, [Some(500), None, Some(501), None, Some(502), None, Some(503), None].map(|o| o.map(|p| (p, Some(0)))));
    for (n, &tid) in tids.iter().enumerate() {
        assert_eq!(run(&mut m, cont(frame(500 + n as u16, 0, tid)), 1), out[n], "late packet of frame {n}");
    }
    // A lost frame keeps its id; its retransmission fills it.
    assert_eq!(run(&mut m, frame(510, 0, 0), 1), Some((506, Some(0))), "508 and 509 missing");
    assert_eq!(run(&mut m, frame(509, 0, 1), 1), Some((505, Some(0))));
    assert_eq!(run(&mut m, frame(508, 0, 2), 1), None, "missing and above the layer: dropped");
    assert_eq!(run(&mut m, frame(511, 0, 1), 1), Some((507, Some(0))));
    // Far behind the history: dropped, unless a keyframe (a restart of the numbering).
    for n in 512..700 {
        run(&mut m, frame(n, 0, 0), 1);
    }
    assert_eq!(run(&mut m, cont(frame(560, 0, 0)), 1), None, "older than the history");
    assert_eq!(run(&mut m, cont(frame(572, 0, 0)), 1), Some((568, Some(0))), "the oldest remembered");
    assert_eq!(run(&mut m, key(frame(3, 9, 0)), 1), Some((696, Some(1))), "restart continues after 695");
    assert_eq!(run(&mut m, frame(4, 9, 0), 1), Some((697, Some(1))));
}

#[test]
fn picture_ids_wrap() {
    let mut m = Vp8Munger::new();
    let mut sent = Vec::new();
    for n in 0..20u16 {
        let p = frame((32760 + n) % 32768, 0, if n % 2 == 1 { 1 } else { 0 });
        sent.extend(run(&mut m, p, 0).map(|s| s.0));
    }
    assert_eq!(sent, (0..10).map(|k| (32760 + k) % 32768).collect::<Vec<u16>>(), "every other frame, ids continuous through 0");
    assert_eq!(run(&mut m, cont(frame(8, 0, 0)), 0), Some((0, Some(0))), "late across the wrap");
    m.switch_stream();
    let short = |v: u16, tid| Pkt { pic: Some(PictureId { value: v, long: false }), ..frame(0, 0, tid) };
    let mut sent = Vec::new();
    for n in 0..8u16 {
        sent.extend(run(&mut m, short((124 + n) % 128, (n % 2) as u8), 0).map(|s| s.0));
    }
    assert_eq!(sent, [2, 3, 4, 5], "7-bit input 127 -> 0, output going on from 32769 mod 128");
    let mut m = Vp8Munger::new();
    for n in 120..140u16 {
        assert_eq!(run(&mut m, short(n % 128, 0), 0), Some(((n % 128), Some(0))));
    }
    assert_eq!(run(&mut m, cont(short(127, 0)), 0), Some((127, Some(0))), "late across the 7-bit wrap");
}

#[test]
fn without_picture_ids_only_tid_decides() {
    let mut m = Vp8Munger::new();
    let p = Pkt { start: true, tl0: Some(4), tid: Some(1), ..Pkt::default() };
    let mut buf = build(p);
    assert_eq!(m.process(&mut buf, 1), Ok((Vp8Verdict::Forward, 1)));
    assert_eq!(buf, build(p), "not rewritten");
    assert_eq!(m.process(&mut build(Pkt { tid: Some(2), ..p }), 1), Ok((Vp8Verdict::Drop, 1)));
    assert_eq!(m.process(&mut [0x10, 0x01], 0), Ok((Vp8Verdict::Forward, 0)), "no T: layer 0");
    assert_eq!(m.process(&mut [0x80], 0), Err(Vp8Error::Truncated));
}

#[test]
fn random_input_never_panics() {
    let mut rng = fastrand::Rng::with_seed(0x5eed_0078);
    let mut m = Vp8Munger::new();
    let (mut ok, mut forwarded) = (0, 0);
    for i in 0..100_000 {
        let len = rng.usize(0..12);
        let mut buf: Vec<u8> = (0..len).map(|_| rng.u8(..)).collect();
        if i % 3 == 0 && len > 2 {
            buf[0] |= 0x80; // mostly with extensions
            buf[1] |= 0x80;
        }
        let copy = buf.clone();
        let parsed = parse(&buf);
        if rng.u8(..) == 0 {
            m.switch_stream();
        }
        let result = m.process(&mut buf, rng.u8(0..4));
        assert_eq!(result.is_ok(), parsed.is_ok());
        if let Ok(d) = parsed {
            ok += 1;
            assert!(d.header_len < copy.len() && d.header_len <= 6);
            write(&mut buf, &d, rng.u16(..), rng.u8(..));
            let again = parse(&buf).unwrap();
            assert_eq!((again.header_len, again.tid, again.keyframe), (d.header_len, d.tid, d.keyframe), "rewrite keeps the layout");
            forwarded += usize::from(result.unwrap().0 == Vp8Verdict::Forward);
        } else {
            assert_eq!(buf, copy);
        }
    }
    assert!(ok > 50_000 && forwarded > 1_000, "{ok} parsed, {forwarded} forwarded");
}

#[test]
fn random_streams_keep_their_invariants() {
    let mut rng = fastrand::Rng::with_seed(7741);
    let mut m = Vp8Munger::new();
    let mut last_out: Option<u16> = None;
    let mut frames: Vec<(Pkt, Sent)> = Vec::new();
    let mut pic = rng.u16(..32768);
    let (mut max, mut tl0) = (2, 0u8);
    for n in 0..20_000u32 {
        if rng.u8(..) < 2 {
            m.switch_stream();
            frames.clear();
            pic = rng.u16(..32768);
            tl0 = rng.u8(..);
        }
        if rng.u8(..) < 8 {
            max = rng.u8(0..3);
        }
        if !frames.is_empty() && rng.u8(..) < 80 {
            let back = rng.usize(..frames.len().min(120));
            let (p, fate) = frames[frames.len() - 1 - back];
            assert_eq!(run(&mut m, cont(p), max), fate, "late packet {back} frames back");
            continue;
        }
        let tid = [0, 2, 1, 2][n as usize % 4];
        tl0 = tl0.wrapping_add(u8::from(tid == 0));
        pic = (pic + 1) % 32768;
        let p = Pkt { y: rng.bool(), key: frames.is_empty(), ..frame(pic, tl0, tid) };
        let fate = run(&mut m, p, max);
        if let Some((out, _)) = fate {
            if let Some(last) = last_out {
                assert_eq!(out, (last + 1) % 32768, "frame {n}: continuous");
            }
            last_out = Some(out);
        }
        assert!(fate.is_some() || tid > 0, "TID 0 always passes");
        frames.push((p, fate));
    }
}

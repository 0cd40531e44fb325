package ir

import "github.com/ebpfc/ebpfc/source"

func at(line, col int) Pos { return source.Pos{File: "policies.cue", Line: line, Col: col} }

// sampleModule builds, with the builder, a module that exercises every op and
// terminator and passes Check.
func sampleModule() *Module {
	m := &Module{
		Name:   "node-a",
		Consts: []Const{{Name: "ep.web.ingress.enforced", Value: 1}},
		Maps: []*Map{
			{
				Name: "counters", Type: MapPerCPUArray,
				Key:        Struct{Name: "u32_key", Fields: []Field{{Name: "index", Size: 4}}},
				Value:      Struct{Name: "counter", Fields: []Field{{Name: "packets", Size: 8}, {Name: "bytes", Size: 8}}},
				MaxEntries: 16, Pos: at(2, 1),
			},
			{
				Name: "events", Type: MapRingBuf,
				Value:      Struct{Name: "event", Fields: []Field{{Name: "type", Size: 1}, {Name: "stamp", Size: 8}}},
				MaxEntries: 4096, Pos: at(2, 5),
			},
			{
				Name: "ipcache", Type: MapLPMTrie,
				Key:        Struct{Name: "ipcache_key", Fields: []Field{{Name: "prefixlen", Size: 4}, {Name: "addr", Size: 4, BigEndian: true}}},
				Value:      Struct{Name: "ipcache_value", Fields: []Field{{Name: "identity", Size: 4}}},
				MaxEntries: 16384, Flags: 1, Pos: at(3, 1),
			},
			{
				Name: "progs", Type: MapProgArray,
				Key:        Struct{Name: "u32_key", Fields: []Field{{Name: "index", Size: 4}}},
				Value:      Struct{Name: "u32_value", Fields: []Field{{Name: "prog", Size: 4}}},
				MaxEntries: 4, Slots: []string{"ep_web_ingress", "", "ep_web_ipv4"},
			},
		},
	}
	pb := NewProgram("ep_web_ingress", ProgSchedCLS, "tc", at(10, 3))
	entry := pb.Block("entry")
	eth := pb.Block("eth")
	ipv4 := pb.Block("ipv4")
	hit := pb.NewBlock("hit")
	count := pb.NewBlock("count")
	tail := pb.NewBlock("tail")
	drop := pb.Block("drop")
	pass := pb.Block("pass")

	ctx := entry.Ctx(at(10, 3))
	data := entry.CtxLoad(at(10, 3), ctx, "data")
	end := entry.CtxLoad(at(10, 3), ctx, "data_end")
	entry.Bounds(at(11, 5), data, 34, end, eth.Label(), drop.Label())

	proto := eth.Load(at(12, 5), data, 12, 2)
	enforced := eth.Param(at(12, 5), "ep.web.ingress.enforced")
	eth.Branch(at(12, 5), Eq, proto, C(0x8), ipv4.Label(), pass.Label())
	_ = enforced

	saddr := ipv4.Load(at(13, 7), data, 26, 4)
	host := ipv4.Swap32(at(13, 7), V(saddr))
	masked := ipv4.And(at(13, 7), V(host), C(0xffffff00))
	_ = ipv4.Add(at(13, 7), V(masked), C(-1))
	id := ipv4.MapLookup(at(14, 7), "ipcache", C(32), V(saddr))
	ipv4.IfNull(at(14, 7), id, drop.Label(), hit.Label())

	ident := hit.Load(at(15, 7), id, 0, 4)
	hit.Store(at(15, 7), id, 0, 4, V(ident))
	hit.CtxStore(at(15, 7), ctx, "mark", V(ident))
	now := hit.KtimeNs(at(16, 1))
	_ = hit.MapUpdate(at(16, 1), "counters", 0, C(0), V(now), C(1))
	_ = hit.MapDelete(at(16, 1), "ipcache", C(32), V(saddr))
	_ = hit.RingbufOutput(at(16, 1), "events", C(1), V(now))
	c := hit.MapLookup(at(16, 1), "counters", C(0))
	hit.IfNull(at(16, 1), c, pass.Label(), count.Label())

	count.AtomicAdd(at(16, 1), c, 0, 8, C(1))
	l3 := count.Mov(at(16, 1), C(14))
	nh := count.PacketAdd(at(16, 1), data, l3, 14)
	count.Jump(at(16, 1), tail.Label())

	tail.TailCall(at(17, 1), ctx, "progs", 2, "ep_web_ipv4", drop.Label())
	drop.Return(at(18, 1), 2)
	_ = nh
	rv := pass.Const(at(19, 1), 0)
	pass.ReturnValue(at(19, 1), rv)
	m.Programs = append(m.Programs, pb.Program())

	pb = NewProgram("ep_web_ipv4", ProgSchedCLS, "tc", at(20, 1))
	b := pb.Block("entry")
	b.Ctx(at(20, 1))
	b.Return(at(20, 1), 0)
	m.Programs = append(m.Programs, pb.Program())
	return m
}

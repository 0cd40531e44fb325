package backend

import (
	"bytes"
	"encoding/binary"
	"github.com/cilium/ebpf/ringbuf"
	"math/rand/v2"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/ebpfc/ebpfc/internal/testenv"
	"github.com/ebpfc/ebpfc/ir"
)

// These tests load generated programs into the running kernel, so its
// verifier judges the code, and run them on packets with BPF_PROG_TEST_RUN.

// genLoaded is an object loaded into the kernel.
type genLoaded struct {
	progs map[string]*ebpf.Program
	maps  map[string]*ebpf.Map
}

// genLoadObject creates o's maps and loads its programs, logging the
// verifier's processed-instruction count of each unless quiet. Program
// arrays start empty; tests fill them.
func genLoadObject(t *testing.T, o *Object, quiet bool) *genLoaded {
	t.Helper()
	testenv.RequireKernel(t)
	l := &genLoaded{progs: map[string]*ebpf.Program{}, maps: map[string]*ebpf.Map{}}
	for _, m := range o.Maps {
		spec := MapSpec(m).Copy()
		spec.Contents = nil
		mp, err := ebpf.NewMap(spec)
		if err != nil {
			t.Fatalf("create map %s: %v", m.Name, err)
		}
		t.Cleanup(func() { mp.Close() })
		l.maps[m.Name] = mp
	}
	for _, p := range o.Programs {
		insns := make(asm.Instructions, len(p.Insns))
		copy(insns, p.Insns)
		for _, ins := range insns {
			if ins.IsLoadFromMap() && ins.Map() == nil {
				if err := insns.AssociateMap(ins.Reference(), l.maps[ins.Reference()]); err != nil {
					t.Fatalf("%s: associate map %s: %v", p.Name, ins.Reference(), err)
				}
			}
		}
		prog, err := ebpf.NewProgramWithOptions(&ebpf.ProgramSpec{
			Name:         p.Name,
			Type:         p.Type,
			Instructions: insns,
			License:      o.License,
		}, ebpf.ProgramOptions{LogLevel: ebpf.LogLevelStats})
		if err != nil {
			t.Fatalf("load %s: %+v\nlisting:\n%s", p.Name, err, Listing(o))
		}
		t.Cleanup(func() { prog.Close() })
		if !quiet {
			t.Logf("%s: %d instructions; verifier: %s", p.Name, len(p.Insns), processedLine(prog.VerifierLog))
		}
		l.progs[p.Name] = prog
	}
	return l
}

// processedLine picks the "processed N insns" line out of a verifier log.
func processedLine(log string) string {
	for line := range strings.SplitSeq(log, "\n") {
		if strings.HasPrefix(line, "processed ") {
			return line
		}
	}
	return strings.TrimSpace(log)
}

func genRun(t *testing.T, p *ebpf.Program, pkt []byte) uint32 {
	t.Helper()
	ret, err := p.Run(&ebpf.RunOptions{Data: pkt})
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	return ret
}

var (
	genSrcMAC = net.HardwareAddr{0x02, 0, 0, 0, 0, 1}
	genDstMAC = net.HardwareAddr{0x02, 0, 0, 0, 0, 2}
)

func serialize(t *testing.T, ls ...gopacket.SerializableLayer) []byte {
	t.Helper()
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// ipv4Packet builds Ethernet + IPv4 (+ a router-alert option when withOption,
// making the header 24 bytes) + TCP or UDP.
func ipv4Packet(t *testing.T, src string, proto layers.IPProtocol, sport, dport uint16, withOption bool) []byte {
	t.Helper()
	eth := &layers.Ethernet{SrcMAC: genSrcMAC, DstMAC: genDstMAC, EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: proto, SrcIP: net.ParseIP(src).To4(), DstIP: net.IPv4(10, 9, 9, 9).To4()}
	if withOption {
		ip.Options = []layers.IPv4Option{{OptionType: 0x94, OptionLength: 4, OptionData: []byte{0, 0}}}
	}
	payload := gopacket.Payload("hello")
	switch proto {
	case layers.IPProtocolTCP:
		tcp := &layers.TCP{SrcPort: layers.TCPPort(sport), DstPort: layers.TCPPort(dport), SYN: true, Window: 1024}
		if err := tcp.SetNetworkLayerForChecksum(ip); err != nil {
			t.Fatal(err)
		}
		return serialize(t, eth, ip, tcp, payload)
	default:
		udp := &layers.UDP{SrcPort: layers.UDPPort(sport), DstPort: layers.UDPPort(dport)}
		if err := udp.SetNetworkLayerForChecksum(ip); err != nil {
			t.Fatal(err)
		}
		return serialize(t, eth, ip, udp, payload)
	}
}

// rawEthernet builds an Ethernet frame of an experimental ethertype carrying
// payload as is.
func rawEthernet(t *testing.T, etype layers.EthernetType, payload []byte) []byte {
	t.Helper()
	return serialize(t, &layers.Ethernet{SrcMAC: genSrcMAC, DstMAC: genDstMAC, EthernetType: etype}, gopacket.Payload(payload))
}

// lpmKey is ip_cache's key as the kernel lays it out: host-order prefix
// length, network-order address.
type lpmKey struct {
	Prefixlen uint32
	Addr      [4]byte
}

func TestKernelLPMPolicy(t *testing.T) {
	o := mustGenerate(t, genLPMModule())
	l := genLoadObject(t, o, false)
	cache := l.maps["ip_cache"]
	for _, e := range []struct {
		cidr string
		deny uint32
	}{{"10.0.0.0/8", 0}, {"192.168.0.0/16", 1}} {
		_, n, _ := net.ParseCIDR(e.cidr)
		ones, _ := n.Mask.Size()
		if err := cache.Put(lpmKey{uint32(ones), [4]byte(n.IP.To4())}, e.deny); err != nil {
			t.Fatal(err)
		}
	}

	truncated := ipv4Packet(t, "10.1.2.3", layers.IPProtocolTCP, 1234, 80, false)[:14+10]
	badIHL := ipv4Packet(t, "10.1.2.3", layers.IPProtocolTCP, 1234, 80, false)
	badIHL[14] = 0x44
	// IHL 15 claims 60 header bytes the packet does not have.
	longIHL := ipv4Packet(t, "10.1.2.3", layers.IPProtocolTCP, 1234, 80, false)
	longIHL[14] = 0x4f

	prog := l.progs["lpm_policy"]
	for _, tc := range []struct {
		name string
		pkt  []byte
		want uint32
	}{
		{"allowed source, port 80", ipv4Packet(t, "10.1.2.3", layers.IPProtocolTCP, 1234, 80, false), xdpPass},
		{"allowed source, port 22", ipv4Packet(t, "10.1.2.3", layers.IPProtocolTCP, 1234, 22, false), xdpDrop},
		{"ip options, port 80", ipv4Packet(t, "10.1.2.3", layers.IPProtocolTCP, 22, 80, true), xdpPass},
		{"ip options, port 22", ipv4Packet(t, "10.1.2.3", layers.IPProtocolTCP, 80, 22, true), xdpDrop},
		{"denied source", ipv4Packet(t, "192.168.7.7", layers.IPProtocolTCP, 1234, 80, false), xdpDrop},
		{"unknown source", ipv4Packet(t, "172.16.0.1", layers.IPProtocolTCP, 1234, 80, false), xdpTx},
		{"udp", ipv4Packet(t, "10.1.2.3", layers.IPProtocolUDP, 1234, 22, false), xdpPass},
		{"not ipv4", rawEthernet(t, layers.EthernetTypeIPv6, make([]byte, 40)), xdpPass},
		{"truncated", truncated, xdpDrop},
		{"ihl below 5", badIHL, xdpDrop},
		{"ihl past the end", longIHL, xdpDrop},
	} {
		if got := genRun(t, prog, tc.pkt); got != tc.want {
			t.Errorf("%s: returned %d, want %d", tc.name, got, tc.want)
		}
	}
}

// flowKey is flows' key with its padding.
type flowKey struct {
	A uint16
	_ uint16
	B uint32
}

func TestKernelSpillHeavy(t *testing.T) {
	o := mustGenerate(t, genSpillModule())
	if n := countSpillSlots(o.Programs[0]); n == 0 {
		t.Fatalf("spill_heavy spills nothing; the test no longer exercises spilling:\n%s", Listing(o))
	}
	l := genLoadObject(t, o, false)
	flows := l.maps["flows"]
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 4 {
		payload := make([]byte, 2*spillWords)
		for i := range payload {
			payload[i] = byte(rng.UintN(256))
		}
		// Keep the deleted key (w3, w4) apart from the inserted one (w0, w1).
		payload[6] = payload[0] + 1
		word := func(i int) uint16 { return binary.LittleEndian.Uint16(payload[2*i:]) }

		got := genRun(t, l.progs["spill_heavy"], rawEthernet(t, 0x88b5, payload))
		if want := spillChecksum(payload); got != want {
			t.Errorf("round %d: returned %#x, want %#x", round, got, want)
		}
		// The program stored w5 into the value it inserted as w2.
		key := flowKey{A: word(0), B: uint32(word(1))}
		var val uint64
		if err := flows.Lookup(key, &val); err != nil {
			t.Fatalf("round %d: lookup %+v: %v", round, key, err)
		}
		if val != uint64(word(5)) {
			t.Errorf("round %d: flows[%+v] = %#x, want %#x", round, key, val, word(5))
		}
		if err := flows.Delete(key); err != nil {
			t.Fatal(err)
		}
	}
}

// countSpillSlots counts the distinct 8-byte stack stores of registers, the
// spills.
func countSpillSlots(p *Program) int {
	slots := map[int16]bool{}
	for _, ins := range p.Insns {
		if ins.OpCode == asm.StoreMemOp(asm.DWord) && ins.Dst == asm.RFP && ins.Src != asm.RFP {
			slots[ins.Offset] = true
		}
	}
	return len(slots)
}

func TestKernelTailCall(t *testing.T) {
	o := mustGenerate(t, genTailCallModule())
	l := genLoadObject(t, o, false)
	entry := l.progs["tail_entry"]
	pkt := rawEthernet(t, 0x88b5, make([]byte, 50))

	// An empty slot falls through, with the length kept across the call.
	if got, want := genRun(t, entry, pkt), uint32(len(pkt)+1000); got != want {
		t.Errorf("empty slot: returned %d, want %d", got, want)
	}
	if err := l.maps["jmp"].Put(uint32(1), uint32(l.progs["tail_target"].FD())); err != nil {
		t.Fatal(err)
	}
	if got := genRun(t, entry, pkt); got != tailTargetResult {
		t.Errorf("filled slot: returned %d, want %d", got, tailTargetResult)
	}
}

// statsValue is stats' value, padded to 8 bytes as the kernel sizes it.
type statsValue struct {
	Packets uint64
	Bytes   uint64
	LastLen uint32
	_       uint32
}

func TestKernelPerCPUCounter(t *testing.T) {
	o := mustGenerate(t, genCounterModule())
	l := genLoadObject(t, o, false)
	pkt := rawEthernet(t, 0x88b5, make([]byte, 64))
	const runs = 25
	ret, err := l.progs["count"].Run(&ebpf.RunOptions{Data: pkt, Repeat: runs})
	if err != nil {
		t.Fatal(err)
	}
	if ret != 0 {
		t.Fatalf("returned %d, want 0 (the counter slot exists)", ret)
	}
	var perCPU []statsValue
	if err := l.maps["stats"].Lookup(uint32(0), &perCPU); err != nil {
		t.Fatal(err)
	}
	var sum statsValue
	for _, v := range perCPU {
		sum.Packets += v.Packets
		sum.Bytes += v.Bytes
		if v.Packets > 0 {
			sum.LastLen = v.LastLen
		}
	}
	if sum.Packets != runs || sum.Bytes != runs*uint64(len(pkt)) || sum.LastLen != uint32(len(pkt)) {
		t.Errorf("counters %+v, want %d packets, %d bytes, last length %d", sum, runs, runs*len(pkt), len(pkt))
	}
}

// evalCond is the meaning of a Cond, in Go.
func evalCond(c ir.Cond, a, b uint64) bool {
	switch c {
	case ir.Eq:
		return a == b
	case ir.Ne:
		return a != b
	case ir.Lt:
		return a < b
	case ir.Le:
		return a <= b
	case ir.Gt:
		return a > b
	case ir.Ge:
		return a >= b
	case ir.SLt:
		return int64(a) < int64(b)
	case ir.SLe:
		return int64(a) <= int64(b)
	case ir.SGt:
		return int64(a) > int64(b)
	case ir.SGe:
		return int64(a) >= int64(b)
	case ir.Set:
		return a&b != 0
	}
	panic("bad cond")
}

// TestKernelBranches runs every condition with a register and with
// immediates (including one too wide for 32 bits), in both layouts, against
// evalCond.
func TestKernelBranches(t *testing.T) {
	testenv.RequireKernel(t)
	values := []uint64{0, 1, 7, ^uint64(4), ^uint64(0), 1 << 40, 0x80000000}
	imms := []int64{7, -5, 1 << 40}
	for cond := ir.Eq; cond <= ir.Set; cond++ {
		for _, inverted := range []bool{false, true} {
			bs := []*int64{nil}
			for i := range imms {
				bs = append(bs, &imms[i])
			}
			for _, b := range bs {
				o := mustGenerate(t, genBranchModule(cond, b, inverted))
				prog := genLoadObject(t, o, true).progs["branch"]
				for _, av := range values {
					bvals := values
					if b != nil {
						bvals = []uint64{uint64(*b)}
					}
					for _, bv := range bvals {
						payload := binary.LittleEndian.AppendUint64(nil, av)
						payload = binary.LittleEndian.AppendUint64(payload, bv)
						want := uint32(0)
						if evalCond(cond, av, bv) {
							want = 1
						}
						if got := genRun(t, prog, rawEthernet(t, 0x88b5, payload)); got != want {
							t.Errorf("%v %#x %v %#x (imm %v, inverted %v): got %d, want %d",
								cond, av, cond, bv, b != nil, inverted, got, want)
						}
					}
				}
			}
		}
	}
}

// TestKernelRingbufOutput sends a record whose fields mix sizes and a
// packet-derived value through bpf_ringbuf_output and reads it back.
func TestKernelRingbufOutput(t *testing.T) {
	pos := genPos(1)
	rec := ir.Struct{Name: "event", Fields: []ir.Field{
		{Name: "type", Size: 1}, {Name: "proto", Size: 2}, {Name: "len", Size: 4},
		{Name: "stamp", Size: 8}, {Name: "tail", Size: 4},
	}}
	pb := ir.NewProgram("emit", ir.ProgSchedCLS, "tc", pos)
	b := pb.Block("entry")
	ctx := b.Ctx(pos)
	n := b.CtxLoad(pos, ctx, "len")
	b.RingbufOutput(pos, "events", ir.C(7), ir.C(0x1234), ir.V(n), ir.C(0x0102030405060708), ir.C(-1))
	b.Return(pos, 0)
	mod := &ir.Module{Name: "rb", Maps: []*ir.Map{{Name: "events", Type: ir.MapRingBuf, Value: rec, MaxEntries: 1 << 12, Pos: pos}},
		Programs: []*ir.Program{pb.Program()}}
	o := mustGenerate(t, mod)
	l := genLoadObject(t, o, false)
	rd, err := ringbuf.NewReader(l.maps["events"])
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	pkt := rawEthernet(t, 0x88b5, make([]byte, 50))
	if ret := genRun(t, l.progs["emit"], pkt); ret != 0 {
		t.Fatalf("returned %d", ret)
	}
	rd.SetDeadline(time.Now().Add(2 * time.Second))
	got, err := rd.Read()
	if err != nil {
		t.Fatal(err)
	}
	want := make([]byte, 24)
	want[0] = 7
	binary.LittleEndian.PutUint16(want[2:], 0x1234)
	binary.LittleEndian.PutUint32(want[4:], uint32(len(pkt)))
	binary.LittleEndian.PutUint64(want[8:], 0x0102030405060708)
	binary.LittleEndian.PutUint32(want[16:], 0xffffffff)
	if !bytes.Equal(got.RawSample[:20], want[:20]) || len(got.RawSample) != 24 {
		t.Errorf("record %x, want %x", got.RawSample, want)
	}
}

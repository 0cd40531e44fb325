package explain

import (
	"encoding/binary"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"

	"github.com/ebpfc/ebpfc/compiler"
	"github.com/ebpfc/ebpfc/compiler/lower"
	"github.com/ebpfc/ebpfc/vm"
	"github.com/ebpfc/ebpfc/vm/artifact"
)

// testManifest has a map the decoder knows nothing about beyond its
// layout, as a connection-tracking map would be.
var testManifest = &compiler.Manifest{
	Node: "node-t",
	Maps: []compiler.ManifestMap{{
		Name: "conntrack", Type: "hash",
		Key: compiler.ManifestStruct{Name: "ct_key", Size: 16, Fields: []compiler.ManifestField{
			{Name: "saddr", Offset: 0, Size: 4, BigEndian: true},
			{Name: "daddr", Offset: 4, Size: 4, BigEndian: true},
			{Name: "sport", Offset: 8, Size: 2, BigEndian: true},
			{Name: "dport", Offset: 10, Size: 2, BigEndian: true},
			{Name: "protocol", Offset: 12, Size: 1},
		}},
		Value: compiler.ManifestStruct{Name: "ct_value", Size: 16, Fields: []compiler.ManifestField{
			{Name: "expires", Offset: 0, Size: 8},
			{Name: "src_identity", Offset: 8, Size: 4},
			{Name: "cookie", Offset: 12, Size: 4},
		}},
	}, {
		Name: "ip6", Type: "hash",
		Key: compiler.ManifestStruct{Name: "k", Size: 20, Fields: []compiler.ManifestField{
			{Name: "prefixlen", Offset: 0, Size: 4},
			{Name: "addr0", Offset: 4, Size: 4, BigEndian: true},
			{Name: "addr1", Offset: 8, Size: 4, BigEndian: true},
			{Name: "addr2", Offset: 12, Size: 4, BigEndian: true},
			{Name: "addr3", Offset: 16, Size: 4, BigEndian: true},
		}},
	}},
	Identities:  []lower.Identity{{ID: 9, Name: "reserved:world-ipv4"}},
	Cookies:     []compiler.ManifestCookie{{Cookie: lower.Cookie{ID: 3, Kind: "deny", Policy: "ns/p", Direction: "egress", Rule: 1, Audit: true}, Position: "p.cue:4:5"}},
	DropReasons: []string{"none", "malformed packet"},
}

func TestDecodeAnyLayout(t *testing.T) {
	d := newDecoder(testManifest)
	key := []byte{10, 0, 1, 5, 8, 8, 8, 8, 0x9c, 0x40, 0, 53, 17, 0, 0, 0}
	if got, want := d.key("conntrack", key).String(), "{saddr=10.0.1.5 daddr=8.8.8.8 sport=40000 dport=53 protocol=17 (udp)}"; got != want {
		t.Errorf("key:\n got %s\nwant %s", got, want)
	}
	val := binary.LittleEndian.AppendUint64(nil, 1_000_000)
	val = binary.LittleEndian.AppendUint32(val, 9)
	val = binary.LittleEndian.AppendUint32(val, 3)
	if got, want := d.value("conntrack", val).String(), "{expires=1000000 src_identity=9 (reserved:world-ipv4) cookie=3 (deny by ns/p egressDeny[1], audit)}"; got != want {
		t.Errorf("value:\n got %s\nwant %s", got, want)
	}
	v6 := append(binary.LittleEndian.AppendUint32(nil, 128), 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1)
	if got, want := d.key("ip6", v6).String(), "{prefixlen=128 addr=fd00::1}"; got != want {
		t.Errorf("IPv6 key:\n got %s\nwant %s", got, want)
	}
	// Without a layout, or with one of another size: hex.
	if got := d.key("conntrack", []byte{1, 2}).String(); got != "0102" {
		t.Errorf("short key: %s, want hex 0102", got)
	}
	if got := d.key("no_such_map", []byte{0xab}).String(); got != "ab" {
		t.Errorf("unknown map: %s, want hex ab", got)
	}
}

func TestHelperName(t *testing.T) {
	for fn, want := range map[asm.BuiltinFunc]string{
		asm.FnMapUpdateElem:  "map_update_elem",
		asm.FnRingbufOutput:  "ringbuf_output",
		asm.FnKtimeGetNs:     "ktime_get_ns",
		asm.FnGetPrandomU32:  "get_prandom_u32",
		asm.FnMapDeleteElem:  "map_delete_elem",
		asm.FnSkbStoreBytes:  "skb_store_bytes",
		asm.FnRingbufReserve: "ringbuf_reserve",
	} {
		if got := helperName(fn); got != want {
			t.Errorf("helperName(%v) = %s, want %s", fn, got, want)
		}
	}
}

// TestRunListsOtherHelpers runs a program that updates a map the explain
// package has never heard of: the update is listed by helper name and the
// change decoded by the manifest's layout.
func TestRunListsOtherHelpers(t *testing.T) {
	insns := asm.Instructions{
		asm.StoreImm(asm.RFP, -16, 0x0501000a, asm.Word), // saddr 10.0.1.5
		asm.StoreImm(asm.RFP, -12, 0x08080808, asm.Word), // daddr 8.8.8.8
		asm.StoreImm(asm.RFP, -8, 0x35000000, asm.Word),  // sport 0, dport 53
		asm.StoreImm(asm.RFP, -4, 17, asm.Word),          // protocol udp
		asm.Mov.Imm(asm.R1, 5),
		asm.StoreMem(asm.RFP, -32, asm.R1, asm.DWord), // expires
		asm.StoreImm(asm.RFP, -24, 9, asm.Word),       // src_identity
		asm.StoreImm(asm.RFP, -20, 3, asm.Word),       // cookie
		asm.LoadMapPtr(asm.R1, 0).WithReference("conntrack"),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, -16),
		asm.Mov.Reg(asm.R3, asm.RFP),
		asm.Add.Imm(asm.R3, -32),
		asm.Mov.Imm(asm.R4, 0),
		asm.FnMapUpdateElem.Call(),
		asm.Mov.Imm(asm.R0, 2),
		asm.Return(),
	}
	spec := &ebpf.CollectionSpec{
		Maps: map[string]*ebpf.MapSpec{"conntrack": {Name: "conntrack", Type: ebpf.Hash, KeySize: 16, ValueSize: 16, MaxEntries: 8}},
		Programs: map[string]*ebpf.ProgramSpec{"from_ns_x": {
			Name: "from_ns_x", Type: ebpf.SchedCLS, License: "GPL", Instructions: insns,
		}},
	}
	m, err := vm.NewMachine(spec, vm.Options{})
	if err != nil {
		t.Fatal(err)
	}
	nr := &nodeRun{art: &artifact.Artifact{Manifest: testManifest}, machine: m, dec: newDecoder(testManifest), progs: map[string]*progInfo{}}
	f, err := ParseFlow("udp 10.0.1.5:1 -> 8.8.8.8:53")
	if err != nil {
		t.Fatal(err)
	}
	frame, err := f.Frame()
	if err != nil {
		t.Fatal(err)
	}
	st, err := nr.run(lower.Attachment{Program: "from_ns_x", Hook: "tc", Device: "lxc-x", Direction: "ingress", Endpoint: "ns/x"}, frame, "egress policy of ns/x", Options{})
	if err != nil {
		t.Fatal(err)
	}
	if st.Verdict != "drop" || st.Action != "TC_ACT_SHOT" || st.Insns != len(insns) {
		t.Errorf("verdict %s (%s), %d instructions; want drop (TC_ACT_SHOT), %d", st.Verdict, st.Action, st.Insns, len(insns))
	}
	ev := st.Programs[0].Events
	if len(ev) != 1 || ev[0].Kind != "helper" || ev[0].Helper != "map_update_elem" || *ev[0].Ret != 0 {
		t.Errorf("events %+v, want one map_update_elem returning 0", ev)
	}
	if len(st.Changes) != 1 {
		t.Fatalf("changes %+v, want one", st.Changes)
	}
	c := st.Changes[0]
	got := c.Map + " " + c.Key.String() + ": " + values(c.Before) + " -> " + values(c.After)
	want := "conntrack {saddr=10.0.1.5 daddr=8.8.8.8 sport=0 dport=53 protocol=17 (udp)}: absent -> {expires=5 src_identity=9 (reserved:world-ipv4) cookie=3 (deny by ns/p egressDeny[1], audit)}"
	if got != want {
		t.Errorf("change:\n got %s\nwant %s", got, want)
	}
	if st.Rule != nil {
		t.Errorf("rule %+v from a map that is not rule_stats", st.Rule)
	}
}

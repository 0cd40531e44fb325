package runtime_test

import (
	"encoding/binary"
	"encoding/json"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ebpfc/ebpfc/compiler"
	"github.com/ebpfc/ebpfc/compiler/lower"
	"github.com/ebpfc/ebpfc/runtime"
)

// testEventLayout is an event record layout as the manifest describes it.
// The decoder must follow whatever offsets it gives; see
// TestEventDecoderFollowsLayout.
func testEventLayout() compiler.ManifestStruct {
	return compiler.ManifestStruct{Name: "event", Size: 56, Fields: []compiler.ManifestField{
		{Name: "type", Offset: 0, Size: 1},
		{Name: "direction", Offset: 1, Size: 1},
		{Name: "verdict", Offset: 2, Size: 1},
		{Name: "protocol", Offset: 3, Size: 1},
		{Name: "reason", Offset: 4, Size: 1},
		{Name: "family", Offset: 5, Size: 1},
		{Name: "dport", Offset: 6, Size: 2, BigEndian: true},
		{Name: "sport", Offset: 8, Size: 2, BigEndian: true},
		{Name: "endpoint", Offset: 12, Size: 4},
		{Name: "identity", Offset: 16, Size: 4},
		{Name: "cookie", Offset: 20, Size: 4},
		{Name: "saddr", Offset: 24, Size: 16},
		{Name: "daddr", Offset: 40, Size: 16},
	}}
}

// testEventManifest is a hand-made manifest with an events ring buffer,
// endpoints, identities, cookies and drop reasons.
func testEventManifest(layout compiler.ManifestStruct) (*compiler.Manifest, []byte) {
	m := &compiler.Manifest{
		Format: compiler.ManifestFormat,
		Node:   "node-a",
		Maps:   []compiler.ManifestMap{{Name: "events", Type: "ringbuf", Value: layout, MaxEntries: 1 << 16}},
		Cookies: []compiler.ManifestCookie{
			{Cookie: lower.Cookie{ID: 1, Kind: "allow", Policy: "default/server-ingress", Direction: "ingress", Rule: 0}, Position: "policies.cue:5:3"},
			{Cookie: lower.Cookie{ID: 2, Kind: "default-deny", Direction: "ingress", Rule: -1, Endpoint: "default/server"}, Position: "policies.cue:3:20"},
		},
		Identities:  []lower.Identity{{ID: 2, Name: "reserved:world"}, {ID: 4242, Name: "default/client"}},
		DropReasons: []string{"none", "malformed packet", "policy denied"},
	}
	raw, _ := json.Marshal(m)
	// The endpoint list is not a field of Manifest: add it as the compiler
	// writes it.
	var doc map[string]any
	json.Unmarshal(raw, &doc)
	doc["endpoints"] = []map[string]any{{"index": 0, "id": "default/client", "identity": 4242}, {"index": 1, "id": "default/server", "identity": 4343}}
	raw, _ = json.Marshal(doc)
	return m, raw
}

type testEvent struct {
	typ, dir, verdict, proto, reason, family uint64
	sport, dport                             uint64
	endpoint, identity, cookie               uint64
	saddr, daddr                             netip.Addr
}

// encodeEvent lays out ev as layout says, the way the datapath writes it.
func encodeEvent(layout compiler.ManifestStruct, ev testEvent) []byte {
	rec := make([]byte, layout.Size)
	vals := map[string]uint64{
		"type": ev.typ, "direction": ev.dir, "verdict": ev.verdict, "protocol": ev.proto, "reason": ev.reason,
		"family": ev.family, "dport": ev.dport, "sport": ev.sport, "endpoint": ev.endpoint, "identity": ev.identity, "cookie": ev.cookie,
	}
	for _, f := range layout.Fields {
		b := rec[f.Offset : f.Offset+f.Size]
		var order binary.ByteOrder = binary.LittleEndian
		if f.BigEndian {
			order = binary.BigEndian
		}
		switch f.Name {
		case "saddr", "daddr":
			a := ev.saddr
			if f.Name == "daddr" {
				a = ev.daddr
			}
			a16 := a.As16() // IPv4 as ::ffff:a.b.c.d
			copy(b, a16[:])
			continue
		}
		switch f.Size {
		case 1:
			b[0] = byte(vals[f.Name])
		case 2:
			order.PutUint16(b, uint16(vals[f.Name]))
		case 4:
			order.PutUint32(b, uint32(vals[f.Name]))
		}
	}
	return rec
}

func TestEventDecoder(t *testing.T) {
	layout := testEventLayout()
	m, raw := testEventManifest(layout)
	dec, err := runtime.NewEventDecoder(m, raw)
	if err != nil {
		t.Fatal(err)
	}
	client, server := netip.MustParseAddr("10.1.0.10"), netip.MustParseAddr("10.1.0.11")
	tests := []struct {
		name string
		in   testEvent
		want runtime.Event
		text string
	}{{
		name: "allowed",
		in:   testEvent{typ: 1, dir: 0, verdict: 0, proto: 6, family: 4, sport: 40000, dport: 8080, endpoint: 1, identity: 4242, cookie: 1, saddr: client, daddr: server},
		want: runtime.Event{Type: "verdict", Direction: "ingress", Verdict: "allowed", Protocol: "tcp", Family: 4,
			Source: "10.1.0.10:40000", Destination: "10.1.0.11:8080", Endpoint: "default/server", Identity: 4242, IdentityName: "default/client",
			Cookie: 1, Rule: "default/server-ingress ingress[0]", Position: "policies.cue:5:3"},
		text: `12:00:00.000 verdict allowed ingress tcp 10.1.0.10:40000 -> 10.1.0.11:8080 endpoint default/server peer default/client by default/server-ingress ingress[0] at policies.cue:5:3`,
	}, {
		name: "dropped",
		in:   testEvent{typ: 2, dir: 0, verdict: 1, proto: 17, reason: 2, family: 4, sport: 5353, dport: 9001, endpoint: 1, identity: 4242, cookie: 2, saddr: client, daddr: server},
		want: runtime.Event{Type: "drop", Direction: "ingress", Verdict: "denied", Protocol: "udp", Family: 4,
			Source: "10.1.0.10:5353", Destination: "10.1.0.11:9001", Endpoint: "default/server", Identity: 4242, IdentityName: "default/client",
			Reason: "policy denied", Cookie: 2, Rule: "default-deny of default/server ingress", Position: "policies.cue:3:20"},
		text: `12:00:00.000 drop    denied  ingress udp 10.1.0.10:5353 -> 10.1.0.11:9001 endpoint default/server peer default/client reason "policy denied" by default-deny of default/server ingress at policies.cue:3:20`,
	}, {
		name: "unknown numbers",
		in:   testEvent{typ: 1, dir: 1, verdict: 2, proto: 1, family: 6, endpoint: 9, identity: 77, cookie: 99, saddr: netip.MustParseAddr("fd00::1"), daddr: netip.MustParseAddr("fd00::2")},
		want: runtime.Event{Type: "verdict", Direction: "egress", Verdict: "audited", Protocol: "icmp", Family: 6,
			Source: "fd00::1", Destination: "fd00::2", Endpoint: "#9", Identity: 77, Cookie: 99},
		text: `12:00:00.000 verdict audited egress  icmp fd00::1 -> fd00::2 endpoint #9 peer identity 77`,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := dec.Decode(encodeEvent(layout, tt.in))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("decoded (-want +got):\n%s", diff)
			}
			got.Time = time.Date(2026, 1, 2, 12, 0, 0, 0, time.UTC)
			if s := got.String(); s != tt.text {
				t.Errorf("text:\n got %s\nwant %s", s, tt.text)
			}
		})
	}
	if _, err := dec.Decode(make([]byte, 10)); err == nil {
		t.Error("a short record decoded without error")
	}
}

// TestEventDecoderFollowsLayout moves every field and puts the layout where
// only the raw manifest has it: the decoder reads what the layout says.
func TestEventDecoderFollowsLayout(t *testing.T) {
	layout := compiler.ManifestStruct{Name: "event", Size: 64}
	order := []struct {
		name string
		size int
	}{{"saddr", 16}, {"daddr", 16}, {"cookie", 4}, {"identity", 4}, {"endpoint", 4}, {"sport", 2}, {"dport", 2},
		{"family", 1}, {"reason", 1}, {"protocol", 1}, {"verdict", 1}, {"direction", 1}, {"type", 1}}
	off := 0
	for _, f := range order {
		layout.Fields = append(layout.Fields, compiler.ManifestField{Name: f.name, Offset: off, Size: f.size, BigEndian: f.name == "sport" || f.name == "dport"})
		off += f.size
	}
	m, raw := testEventManifest(testEventLayout())
	m.Maps[0].Value = compiler.ManifestStruct{Name: "u32_value", Size: 4}
	var doc map[string]any
	json.Unmarshal(raw, &doc)
	doc["maps"] = []any{map[string]any{"name": "events", "type": "ringbuf"}}
	doc["layouts"] = []any{layout}
	raw, _ = json.Marshal(doc)
	dec, err := runtime.NewEventDecoder(m, raw)
	if err != nil {
		t.Fatal(err)
	}
	in := testEvent{typ: 2, verdict: 1, proto: 6, reason: 1, family: 4, sport: 1, dport: 2, endpoint: 0, identity: 2, cookie: 2,
		saddr: netip.MustParseAddr("192.0.2.1"), daddr: netip.MustParseAddr("10.1.0.10")}
	got, err := dec.Decode(encodeEvent(layout, in))
	if err != nil {
		t.Fatal(err)
	}
	if got.Source != "192.0.2.1:1" || got.Destination != "10.1.0.10:2" || got.Reason != "malformed packet" || got.Endpoint != "default/client" || got.IdentityName != "reserved:world" {
		t.Errorf("decoded %+v", got)
	}
}

func TestEventDecoderErrors(t *testing.T) {
	m, _ := testEventManifest(testEventLayout())
	m.Maps = nil
	if _, err := runtime.NewEventDecoder(m, nil); err == nil || !strings.Contains(err.Error(), "no \"event\" record layout") {
		t.Errorf("no layout: error %v", err)
	}
	bad := testEventLayout()
	bad.Fields = bad.Fields[1:] // no type
	m, raw := testEventManifest(bad)
	if _, err := runtime.NewEventDecoder(m, raw); err == nil || !strings.Contains(err.Error(), `no field "type"`) {
		t.Errorf("missing field: error %v", err)
	}
	bad = testEventLayout()
	bad.Fields[0].Offset = 60
	m, raw = testEventManifest(bad)
	if _, err := runtime.NewEventDecoder(m, raw); err == nil || !strings.Contains(err.Error(), "does not fit") {
		t.Errorf("field outside the record: error %v", err)
	}
}

func TestEventFilter(t *testing.T) {
	ev := runtime.Event{Type: "drop", Verdict: "denied", Endpoint: "default/server"}
	for _, tt := range []struct {
		f    runtime.EventFilter
		want bool
	}{
		{runtime.EventFilter{}, true},
		{runtime.EventFilter{Type: "drop"}, true},
		{runtime.EventFilter{Type: "verdict"}, false},
		{runtime.EventFilter{Verdict: "denied", Endpoint: "default/server"}, true},
		{runtime.EventFilter{Endpoint: "default/client"}, false},
	} {
		if got := tt.f.Match(ev); got != tt.want {
			t.Errorf("%+v.Match = %v, want %v", tt.f, got, tt.want)
		}
	}
	if err := (runtime.EventFilter{Type: "drops"}).Check(); err == nil {
		t.Error(`type "drops" accepted`)
	}
	if err := (runtime.EventFilter{Verdict: "deny"}).Check(); err == nil {
		t.Error(`verdict "deny" accepted`)
	}
}

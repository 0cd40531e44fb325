package runtime

// This file decodes the records of the "events" ring buffer. The record's
// layout is not hard-coded: it comes from the manifest (a struct named
// "event"), so that the compiler can move or widen fields without a change
// here. Only the field names and their meanings are fixed.

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/ebpfc/ebpfc/compiler"
	"github.com/ebpfc/ebpfc/compiler/lower"
)

// EventsMap is the name of the ring buffer map that carries verdict and drop
// events.
const EventsMap = "events"

// EventLayoutName is the name of the struct in the manifest that describes
// one record of the events ring buffer.
const EventLayoutName = "event"

// Event types, directions and verdicts as the datapath writes them.
const (
	eventVerdict = 1
	eventDrop    = 2
)

// ManifestEndpoint is one entry of the manifest's "endpoints" list.
type ManifestEndpoint = lower.EndpointRef

// EventDecoder turns raw ring buffer records into Events, enriched with the
// names the manifest gives to endpoints, identities, rule cookies and drop
// reasons.
type EventDecoder struct {
	layout     compiler.ManifestStruct
	fields     map[string]compiler.ManifestField
	endpoints  map[uint32]ManifestEndpoint
	identities map[uint32]string
	cookies    map[uint32]compiler.ManifestCookie
	reasons    []string
}

// NewEventDecoder builds a decoder from a manifest and its raw JSON (which
// may carry the event layout and the endpoint list in places the Manifest
// type does not name yet). It returns an error when the manifest describes
// no event layout or the layout lacks a field the decoder needs.
func NewEventDecoder(m *compiler.Manifest, raw []byte) (*EventDecoder, error) {
	layout, ok := findEventLayout(m, raw)
	if !ok {
		return nil, fmt.Errorf("the manifest of node %s describes no %q record layout", m.Node, EventLayoutName)
	}
	d := &EventDecoder{
		layout:     layout,
		fields:     make(map[string]compiler.ManifestField),
		endpoints:  make(map[uint32]ManifestEndpoint),
		identities: make(map[uint32]string),
		cookies:    make(map[uint32]compiler.ManifestCookie),
		reasons:    m.DropReasons,
	}
	for _, f := range layout.Fields {
		if f.Offset < 0 || f.Size <= 0 || f.Offset+f.Size > layout.Size {
			return nil, fmt.Errorf("event layout: field %s (offset %d, size %d) does not fit in %d bytes", f.Name, f.Offset, f.Size, layout.Size)
		}
		d.fields[f.Name] = f
	}
	// An address may also be laid out as four consecutive big-endian words
	// NAME0…NAME3, which is the same 16 bytes.
	for _, name := range []string{"saddr", "daddr"} {
		if _, ok := d.fields[name]; ok {
			continue
		}
		w0, ok := d.fields[name+"0"]
		if !ok {
			continue
		}
		contiguous := true
		for i := range 4 {
			w, ok := d.fields[fmt.Sprintf("%s%d", name, i)]
			if !ok || w.Size != 4 || !w.BigEndian || w.Offset != w0.Offset+4*i {
				contiguous = false
			}
		}
		if contiguous {
			d.fields[name] = compiler.ManifestField{Name: name, Offset: w0.Offset, Size: 16}
		}
	}
	for _, name := range []string{"type", "direction", "verdict", "protocol", "saddr", "daddr"} {
		if _, ok := d.fields[name]; !ok {
			return nil, fmt.Errorf("event layout has no field %q", name)
		}
	}
	for _, name := range []string{"saddr", "daddr"} {
		if s := d.fields[name].Size; s != 16 && s != 4 {
			return nil, fmt.Errorf("event layout: field %s has size %d, want 16 (or 4 for IPv4 only)", name, s)
		}
	}
	var extra struct {
		Endpoints []ManifestEndpoint `json:"endpoints"`
	}
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &extra); err != nil {
			return nil, fmt.Errorf("manifest: %w", err)
		}
	}
	for _, e := range extra.Endpoints {
		d.endpoints[e.Index] = e
	}
	d.extend(m)
	return d, nil
}

// extend adds the endpoints, identities and cookies m names.
func (d *EventDecoder) extend(m *compiler.Manifest) {
	for _, e := range m.Endpoints {
		d.endpoints[e.Index] = e
	}
	for _, id := range m.Identities {
		d.identities[id.ID] = id.Name
	}
	for _, c := range m.Cookies {
		d.cookies[c.ID] = c
	}
}

// findEventLayout looks for the event record layout: first as the value
// struct of the events map, then as any struct named "event" in the raw
// manifest (wherever the compiler puts it).
func findEventLayout(m *compiler.Manifest, raw []byte) (compiler.ManifestStruct, bool) {
	for _, mp := range m.Maps {
		if mp.Name == EventsMap && mp.Value.Name == EventLayoutName && len(mp.Value.Fields) > 0 {
			return mp.Value, true
		}
	}
	if len(raw) == 0 {
		return compiler.ManifestStruct{}, false
	}
	var doc any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if dec.Decode(&doc) != nil {
		return compiler.ManifestStruct{}, false
	}
	var found *compiler.ManifestStruct
	var walk func(v any)
	walk = func(v any) {
		if found != nil {
			return
		}
		switch v := v.(type) {
		case map[string]any:
			if v["name"] == EventLayoutName {
				if _, ok := v["fields"].([]any); ok {
					b, _ := json.Marshal(v)
					var s compiler.ManifestStruct
					if json.Unmarshal(b, &s) == nil && len(s.Fields) > 0 && s.Size > 0 {
						found = &s
						return
					}
				}
			}
			for _, x := range v {
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(doc)
	if found == nil {
		return compiler.ManifestStruct{}, false
	}
	return *found, true
}

// Event is one decoded verdict or drop, with the names behind its numbers.
type Event struct {
	Time        time.Time `json:"time"`
	Node        string    `json:"node,omitempty"`
	Type        string    `json:"type"`      // "verdict" or "drop"
	Direction   string    `json:"direction"` // "ingress" or "egress" (of the endpoint)
	Verdict     string    `json:"verdict"`   // "allowed", "denied" or "audited"
	Protocol    string    `json:"protocol"`
	Family      int       `json:"family"`
	Source      string    `json:"source"`
	Destination string    `json:"destination"`
	// Endpoint is the endpoint's namespace/name, or "#N" when the manifest
	// does not name index N.
	Endpoint string `json:"endpoint,omitempty"`
	// Identity is the remote peer's identity and IdentityName what the
	// manifest calls it.
	Identity     uint32 `json:"identity"`
	IdentityName string `json:"identityName,omitempty"`
	Reason       string `json:"reason,omitempty"`
	Cookie       uint32 `json:"cookie"`
	// Rule says which rule decided, and Position where it is written.
	Rule     string `json:"rule,omitempty"`
	Position string `json:"position,omitempty"`
}

// Decode decodes one record.
func (d *EventDecoder) Decode(rec []byte) (Event, error) {
	if len(rec) < d.layout.Size {
		return Event{}, fmt.Errorf("event record of %d bytes, layout %s needs %d", len(rec), d.layout.Name, d.layout.Size)
	}
	ev := Event{}
	switch t := d.uint("type", rec); t {
	case eventVerdict:
		ev.Type = "verdict"
	case eventDrop:
		ev.Type = "drop"
	default:
		ev.Type = "type-" + strconv.FormatUint(t, 10)
	}
	switch dir := d.uint("direction", rec); dir {
	case 0:
		ev.Direction = "ingress"
	case 1:
		ev.Direction = "egress"
	default:
		ev.Direction = "direction-" + strconv.FormatUint(dir, 10)
	}
	switch v := d.uint("verdict", rec); v {
	case 0:
		ev.Verdict = "allowed"
	case 1:
		ev.Verdict = "denied"
	case 2:
		ev.Verdict = "audited"
	default:
		ev.Verdict = "verdict-" + strconv.FormatUint(v, 10)
	}
	proto := d.uint("protocol", rec)
	ev.Protocol = protocolName(proto)
	ev.Family = int(d.uint("family", rec))
	saddr, daddr := d.addr("saddr", rec), d.addr("daddr", rec)
	if ev.Family == 0 {
		ev.Family = 6
		if saddr.Is4() {
			ev.Family = 4
		}
	}
	sport, dport := d.uint("sport", rec), d.uint("dport", rec)
	hasPorts := proto == 6 || proto == 17 || proto == 132
	ev.Source, ev.Destination = hostPort(saddr, sport, hasPorts), hostPort(daddr, dport, hasPorts)
	if _, ok := d.fields["endpoint"]; ok {
		idx := uint32(d.uint("endpoint", rec))
		if e, ok := d.endpoints[idx]; ok {
			ev.Endpoint = e.ID
		} else {
			ev.Endpoint = "#" + strconv.FormatUint(uint64(idx), 10)
		}
	}
	ev.Identity = uint32(d.uint("identity", rec))
	ev.IdentityName = d.identities[ev.Identity]
	if _, ok := d.fields["reason"]; ok {
		r := d.uint("reason", rec)
		if ev.Type == "drop" || r != 0 {
			if r < uint64(len(d.reasons)) {
				ev.Reason = d.reasons[r]
			} else {
				ev.Reason = "reason-" + strconv.FormatUint(r, 10)
			}
		}
	}
	ev.Cookie = uint32(d.uint("cookie", rec))
	if c, ok := d.cookies[ev.Cookie]; ok {
		ev.Rule = cookieRule(c)
		ev.Position = c.Position
	}
	return ev, nil
}

// cookieRule names the rule a cookie stands for: "POLICY ingress[N]", or
// the default of an endpoint.
func cookieRule(c compiler.ManifestCookie) string {
	switch {
	case c.Policy != "" && c.Rule >= 0:
		return fmt.Sprintf("%s %s[%d]", c.Policy, c.Direction, c.Rule)
	case c.Endpoint != "":
		return fmt.Sprintf("%s of %s %s", c.Kind, c.Endpoint, c.Direction)
	default:
		return c.Kind + " " + c.Direction
	}
}

// uint reads an unsigned field; a field the layout does not have reads 0.
func (d *EventDecoder) uint(name string, rec []byte) uint64 {
	f, ok := d.fields[name]
	if !ok {
		return 0
	}
	b := rec[f.Offset : f.Offset+f.Size]
	var order binary.ByteOrder = binary.LittleEndian
	if f.BigEndian {
		order = binary.BigEndian
	}
	switch f.Size {
	case 1:
		return uint64(b[0])
	case 2:
		return uint64(order.Uint16(b))
	case 4:
		return uint64(order.Uint32(b))
	case 8:
		return order.Uint64(b)
	}
	return 0
}

// addr reads an address field: 16 bytes (IPv4 as ::ffff:a.b.c.d, shown as
// a.b.c.d) or 4 bytes.
func (d *EventDecoder) addr(name string, rec []byte) netip.Addr {
	f := d.fields[name]
	b := rec[f.Offset : f.Offset+f.Size]
	if f.Size == 4 {
		return netip.AddrFrom4([4]byte(b))
	}
	return netip.AddrFrom16([16]byte(b)).Unmap()
}

func hostPort(a netip.Addr, port uint64, hasPorts bool) string {
	if !hasPorts {
		return a.String()
	}
	return netip.AddrPortFrom(a, uint16(port)).String()
}

func protocolName(p uint64) string {
	switch p {
	case 1:
		return "icmp"
	case 6:
		return "tcp"
	case 17:
		return "udp"
	case 58:
		return "icmpv6"
	case 132:
		return "sctp"
	}
	return "proto-" + strconv.FormatUint(p, 10)
}

// String formats the event as one line of text, as 'ebpfc monitor' prints it.
func (e Event) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %-7s %-7s %-7s %s %s -> %s", e.Time.Format("15:04:05.000"), e.Type, e.Verdict, e.Direction, e.Protocol, e.Source, e.Destination)
	if e.Endpoint != "" {
		fmt.Fprintf(&b, " endpoint %s", e.Endpoint)
	}
	if e.IdentityName != "" {
		fmt.Fprintf(&b, " peer %s", e.IdentityName)
	} else {
		fmt.Fprintf(&b, " peer identity %d", e.Identity)
	}
	if e.Reason != "" {
		fmt.Fprintf(&b, " reason %q", e.Reason)
	}
	if e.Rule != "" {
		fmt.Fprintf(&b, " by %s", e.Rule)
	}
	if e.Position != "" {
		fmt.Fprintf(&b, " at %s", e.Position)
	}
	return b.String()
}

// EventFilter selects events; an empty field matches everything.
type EventFilter struct {
	Type     string `json:"type,omitempty"`     // "drop" or "verdict"
	Verdict  string `json:"verdict,omitempty"`  // "allowed", "denied", "audited"
	Endpoint string `json:"endpoint,omitempty"` // namespace/name
}

// Check reports a filter value that can never match.
func (f EventFilter) Check() error {
	switch f.Type {
	case "", "drop", "verdict":
	default:
		return fmt.Errorf("event type %q: want drop or verdict", f.Type)
	}
	switch f.Verdict {
	case "", "allowed", "denied", "audited":
	default:
		return fmt.Errorf("verdict %q: want allowed, denied or audited", f.Verdict)
	}
	return nil
}

// Match reports whether e passes the filter.
func (f EventFilter) Match(e Event) bool {
	return (f.Type == "" || f.Type == e.Type) &&
		(f.Verdict == "" || f.Verdict == e.Verdict) &&
		(f.Endpoint == "" || f.Endpoint == e.Endpoint)
}

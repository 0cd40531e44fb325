package explain

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net/netip"
	"strings"

	"github.com/ebpfc/ebpfc/compiler"
)

// Decoded is a map key or value, field by field as the manifest lays it
// out, or as hex when the manifest has no layout of that size.
type Decoded struct {
	Fields []Field `json:"fields,omitempty"`
	Hex    string  `json:"hex,omitempty"`
}

// Field is one decoded field.
type Field struct {
	Name  string `json:"name"`
	Value string `json:"value"`
	// Note says what the value stands for: an identity's name, a protocol,
	// a direction, the rule behind a cookie, a drop reason.
	Note string `json:"note,omitempty"`
}

func (d Decoded) String() string {
	if d.Fields == nil {
		return d.Hex
	}
	parts := make([]string, len(d.Fields))
	for i, f := range d.Fields {
		parts[i] = f.Name + "=" + f.Value
		if f.Note != "" {
			parts[i] += " (" + f.Note + ")"
		}
	}
	return "{" + strings.Join(parts, " ") + "}"
}

// decoder decodes keys and values of any map in a node's manifest. It
// knows no map by its layout: fields are shown by size and byte order,
// and named by the manifest, so a map added to the datapath is decoded
// without changes here. Notes come from field names that mean the same
// everywhere (identity, protocol, egress, cookie, reason) and from the
// two statistics maps the datapath documents (rule_stats, drop_stats).
type decoder struct {
	man        *compiler.Manifest
	maps       map[string]compiler.ManifestMap
	identities map[uint32]string
	cookies    map[uint32]compiler.ManifestCookie
}

func newDecoder(man *compiler.Manifest) *decoder {
	d := &decoder{
		man:        man,
		maps:       map[string]compiler.ManifestMap{},
		identities: map[uint32]string{},
		cookies:    map[uint32]compiler.ManifestCookie{},
	}
	for _, m := range man.Maps {
		d.maps[m.Name] = m
	}
	for _, id := range man.Identities {
		d.identities[id.ID] = id.Name
	}
	for _, c := range man.Cookies {
		d.cookies[c.ID] = c
	}
	return d
}

func (d *decoder) key(mapName string, b []byte) Decoded {
	return d.decode(mapName, d.maps[mapName].Key, b)
}

func (d *decoder) value(mapName string, b []byte) Decoded {
	return d.decode(mapName, d.maps[mapName].Value, b)
}

// decode shows b as s lays it out. Four big-endian u32 fields NAME0..NAME3
// are one IPv6 address, big-endian u32 fields IPv4 addresses.
func (d *decoder) decode(mapName string, s compiler.ManifestStruct, b []byte) Decoded {
	if len(s.Fields) == 0 || s.Size != len(b) {
		return Decoded{Hex: hex.EncodeToString(b)}
	}
	var out Decoded
	nums := map[string]uint64{}
	for i := 0; i < len(s.Fields); i++ {
		f := s.Fields[i]
		if f.Offset < 0 || f.Size <= 0 || f.Offset+f.Size > len(b) {
			return Decoded{Hex: hex.EncodeToString(b)}
		}
		if name, ok := ipv6Fields(s.Fields[i:], len(b)); ok {
			a := netip.AddrFrom16([16]byte(b[f.Offset : f.Offset+16]))
			out.Fields = append(out.Fields, Field{Name: name, Value: a.String()})
			i += 3
			continue
		}
		fb := b[f.Offset : f.Offset+f.Size]
		switch {
		case f.BigEndian && f.Size == 4:
			out.Fields = append(out.Fields, Field{Name: f.Name, Value: netip.AddrFrom4([4]byte(fb)).String()})
		case f.BigEndian && f.Size == 16:
			out.Fields = append(out.Fields, Field{Name: f.Name, Value: netip.AddrFrom16([16]byte(fb)).String()})
		case f.Size > 8:
			out.Fields = append(out.Fields, Field{Name: f.Name, Value: hex.EncodeToString(fb)})
		default:
			v := number(fb, f.BigEndian)
			nums[f.Name] = v
			out.Fields = append(out.Fields, Field{Name: f.Name, Value: fmt.Sprint(v)})
		}
	}
	for i := range out.Fields {
		out.Fields[i].Note = d.note(mapName, out.Fields[i].Name, nums)
	}
	return out
}

// note says what a field's value stands for, or "".
func (d *decoder) note(mapName, field string, nums map[string]uint64) string {
	v, ok := nums[field]
	if !ok {
		return ""
	}
	switch {
	case field == "index" && mapName == "rule_stats":
		return d.cookieNote(uint32(v))
	case field == "index" && mapName == "drop_stats", field == "reason":
		if v < uint64(len(d.man.DropReasons)) {
			return d.man.DropReasons[v]
		}
	case field == "identity" || strings.HasSuffix(field, "_identity"):
		if v == 0 {
			return "any"
		}
		return d.identities[uint32(v)]
	case field == "protocol" || field == "proto" || field == "nexthdr":
		return protoName(v)
	case field == "egress":
		if v == 0 {
			return "ingress"
		}
		return "egress"
	case field == "dport":
		if p, ok := nums["protocol"]; ok && (p == 1 || p == 58) {
			return fmt.Sprintf("type %d code %d", v>>8, v&0xff)
		}
	case field == "cookie":
		return d.cookieNote(uint32(v))
	case field == "flags":
		if _, ok := nums["cookie"]; !ok {
			return ""
		}
		var fl []string
		if v&1 != 0 {
			fl = append(fl, "deny")
		}
		if v&2 != 0 {
			fl = append(fl, "audit")
		}
		if len(fl) == 0 {
			return "allow"
		}
		return strings.Join(fl, ", ")
	}
	return ""
}

func (d *decoder) cookieNote(id uint32) string {
	c, ok := d.cookies[id]
	if !ok {
		return ""
	}
	return ruleOf(c).summary()
}

// ipv6Fields reports whether fs starts with NAME0..NAME3, four contiguous
// big-endian u32 fields, and returns NAME.
func ipv6Fields(fs []compiler.ManifestField, size int) (string, bool) {
	if len(fs) < 4 {
		return "", false
	}
	name, ok := strings.CutSuffix(fs[0].Name, "0")
	if !ok || fs[0].Offset+16 > size {
		return "", false
	}
	for i, f := range fs[:4] {
		if f.Name != fmt.Sprintf("%s%d", name, i) || !f.BigEndian || f.Size != 4 || f.Offset != fs[0].Offset+4*i {
			return "", false
		}
	}
	return name, true
}

func number(b []byte, bigEndian bool) uint64 {
	var v uint64
	if bigEndian {
		for _, c := range b {
			v = v<<8 | uint64(c)
		}
		return v
	}
	if len(b) == 8 {
		return binary.LittleEndian.Uint64(b)
	}
	for i := len(b) - 1; i >= 0; i-- {
		v = v<<8 | uint64(b[i])
	}
	return v
}

func protoName(p uint64) string {
	switch p {
	case 0:
		return "any"
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
	return ""
}

package compiler

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/ebpfc/ebpfc/backend"
	"github.com/ebpfc/ebpfc/compiler/lower"
	"github.com/ebpfc/ebpfc/compiler/model"
	"github.com/ebpfc/ebpfc/ir"
)

// ManifestFormat is the version of the manifest's layout. It changes when a
// field changes meaning, so loaders can refuse what they do not understand.
const ManifestFormat = 1

// Manifest describes a node's artifacts for the loader and for people: the
// programs and where they attach, the maps with their layouts, and what each
// rule cookie stands for.
type Manifest struct {
	Format      int              `json:"format"`
	Node        string           `json:"node"`
	Object      FileRef          `json:"object"`
	Programs    []ManifestProg   `json:"programs"`
	Maps        []ManifestMap    `json:"maps"`
	Cookies     []ManifestCookie `json:"cookies"`
	Identities  []lower.Identity `json:"identities"`
	DropReasons []string         `json:"dropReasons"`
	// Endpoints maps the endpoint index in events to the endpoint.
	Endpoints []lower.EndpointRef `json:"endpoints"`
	Files     []FileRef           `json:"files"`
}

// FileRef names an artifact file and its SHA-256.
type FileRef struct {
	Name   string `json:"name"`
	SHA256 string `json:"sha256"`
}

// ManifestProg is one program.
type ManifestProg struct {
	Name         string             `json:"name"`
	Section      string             `json:"section"`
	Type         string             `json:"type"`
	Instructions int                `json:"instructions"`
	SHA256       string             `json:"sha256"` // of the instruction bytes
	Attach       []lower.Attachment `json:"attach,omitempty"`
	TailCallSlot *int               `json:"tailCallSlot,omitempty"`
	Position     string             `json:"position"`
}

// ManifestMap is one map with its layout.
type ManifestMap struct {
	Name       string         `json:"name"`
	Type       string         `json:"type"`
	Key        ManifestStruct `json:"key"`
	Value      ManifestStruct `json:"value"`
	MaxEntries uint32         `json:"maxEntries"`
	Flags      uint32         `json:"flags"`
	Pin        string         `json:"pin"`
	Entries    int            `json:"initialEntries"`
	Slots      SlotList       `json:"slots,omitempty"`
	// Sync is true for maps whose whole contents the configuration decides
	// (they appear in maps.json): a loader makes the kernel map equal to
	// them. Other maps (counters, connection tracking, events) belong to
	// the datapath and a loader never rewrites them.
	Sync bool `json:"sync"`
}

// SlotList is a program array's slots: the program at each index, "" for
// an empty slot. Program arrays are sparse (endpoint index × 4 + kind), so
// its JSON form is an object of the filled slots, by index in increasing
// order: {"17512": "to_default_web_ipv4"}. A JSON array (one name per
// slot, as earlier manifests had it) reads too.
type SlotList []string

// MarshalJSON writes the filled slots as an object.
func (sl SlotList) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, prog := range sl {
		if prog == "" {
			continue
		}
		if b.Len() > 1 {
			b.WriteByte(',')
		}
		name, err := json.Marshal(prog)
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(&b, "%q:%s", strconv.Itoa(i), name)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// UnmarshalJSON reads the object MarshalJSON writes, or an array.
func (sl *SlotList) UnmarshalJSON(data []byte) error {
	var dense []string
	if err := json.Unmarshal(data, &dense); err == nil {
		*sl = dense
		return nil
	}
	var sparse map[string]string
	if err := json.Unmarshal(data, &sparse); err != nil {
		return fmt.Errorf("slots: want an object of slot index to program: %w", err)
	}
	out := SlotList{}
	for k, prog := range sparse {
		i, err := strconv.Atoi(k)
		if err != nil || i < 0 || i >= 1<<24 {
			return fmt.Errorf("slots: bad slot index %q", k)
		}
		for len(out) <= i {
			out = append(out, "")
		}
		out[i] = prog
	}
	*sl = out
	return nil
}

// ManifestStruct is the layout of a key or value.
type ManifestStruct struct {
	Name   string          `json:"name"`
	Size   int             `json:"size"`
	Fields []ManifestField `json:"fields"`
}

// ManifestField is one field of a key or value.
type ManifestField struct {
	Name      string `json:"name"`
	Offset    int    `json:"offset"`
	Size      int    `json:"size"`
	BigEndian bool   `json:"bigEndian,omitempty"`
}

// ManifestCookie maps a rule cookie to its rule and source position.
type ManifestCookie struct {
	lower.Cookie
	Position string `json:"position"`
}

// Marshal encodes m as indented JSON with a final newline.
func (m *Manifest) Marshal() ([]byte, error) {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

var mapTypeNames = map[ir.MapType]string{
	ir.MapHash: "hash", ir.MapLRUHash: "lru_hash", ir.MapArray: "array",
	ir.MapPerCPUArray: "percpu_array", ir.MapPerCPUHash: "percpu_hash",
	ir.MapLPMTrie: "lpm_trie", ir.MapProgArray: "prog_array", ir.MapRingBuf: "ringbuf",
}

func manifestStruct(s ir.Struct) ManifestStruct {
	offs, size := s.Offsets()
	ms := ManifestStruct{Name: s.Name, Size: size, Fields: []ManifestField{}}
	for i, f := range s.Fields {
		ms.Fields = append(ms.Fields, ManifestField{Name: f.Name, Offset: offs[i], Size: f.Size, BigEndian: f.BigEndian})
	}
	return ms
}

func buildManifest(n *model.Node, res *lower.Result, obj *backend.Object, files map[string][]byte) *Manifest {
	m := &Manifest{
		Format:      ManifestFormat,
		Node:        n.Name,
		Object:      FileRef{Name: ObjectFile, SHA256: sha(files[ObjectFile])},
		Identities:  res.Identities,
		DropReasons: res.DropReasons,
		Endpoints:   res.Endpoints,
	}
	slotOf := make(map[string]int)
	for _, mp := range obj.Maps {
		for i, s := range mp.Slots {
			if s != "" {
				slotOf[s] = i
			}
		}
	}
	for _, p := range obj.Programs {
		raw, _ := marshalInsns(p)
		mp := ManifestProg{
			Name: p.Name, Section: p.Section, Type: p.Type.String(),
			Instructions: len(p.Insns), SHA256: sha(raw), Position: p.Pos.String(),
		}
		for _, a := range res.Attach {
			if a.Program == p.Name {
				mp.Attach = append(mp.Attach, a)
			}
		}
		if s, ok := slotOf[p.Name]; ok {
			mp.TailCallSlot = &s
		}
		m.Programs = append(m.Programs, mp)
	}
	entries := make(map[string]int)
	synced := make(map[string]bool)
	for _, c := range res.Contents {
		entries[c.Map] = len(c.Entries)
		synced[c.Map] = true
	}
	for _, mp := range obj.Maps {
		m.Maps = append(m.Maps, ManifestMap{
			Name: mp.Name, Type: mapTypeNames[mp.Type],
			Key: manifestStruct(mp.Key), Value: manifestStruct(mp.Value),
			MaxEntries: mp.MaxEntries, Flags: mp.Flags,
			Pin: "ebpfc/" + n.Name + "/" + mp.Name, Entries: entries[mp.Name],
			Slots: mp.Slots, Sync: synced[mp.Name],
		})
	}
	for _, c := range res.Cookies {
		m.Cookies = append(m.Cookies, ManifestCookie{Cookie: c, Position: c.Pos.String()})
	}
	var names []string
	for name := range files {
		if name != ManifestFile {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	for _, name := range names {
		m.Files = append(m.Files, FileRef{Name: name, SHA256: sha(files[name])})
	}
	return m
}

func marshalInsns(p *backend.Program) ([]byte, error) {
	var buf bytes.Buffer
	err := p.Insns.Marshal(&buf, binary.LittleEndian)
	return buf.Bytes(), err
}

// MapsDoc is the initial contents of a node's maps, as written to maps.json.
// Each entry shows its fields by name for people and its exact bytes for
// loaders.
type MapsDoc struct {
	Maps []MapsDocMap `json:"maps"`
}

// MapsDocMap is one map's initial entries.
type MapsDocMap struct {
	Name    string         `json:"name"`
	Entries []MapsDocEntry `json:"entries"`
}

// MapsDocEntry is one entry.
type MapsDocEntry struct {
	Key        map[string]uint64 `json:"key"`
	Value      map[string]uint64 `json:"value"`
	KeyBytes   string            `json:"keyBytes"`
	ValueBytes string            `json:"valueBytes"`
}

func encodeContents(m *ir.Module, contents []lower.MapContents) ([]byte, error) {
	byName := make(map[string]*ir.Map)
	for _, mp := range m.Maps {
		byName[mp.Name] = mp
	}
	doc := MapsDoc{Maps: []MapsDocMap{}}
	for _, c := range contents {
		mp := byName[c.Map]
		if mp == nil {
			return nil, fmt.Errorf("contents for unknown map %s", c.Map)
		}
		dm := MapsDocMap{Name: c.Map, Entries: []MapsDocEntry{}}
		for _, e := range c.Entries {
			kb, err := EncodeStruct(mp.Key, e.Key)
			if err != nil {
				return nil, fmt.Errorf("map %s key: %w", mp.Name, err)
			}
			vb, err := EncodeStruct(mp.Value, e.Value)
			if err != nil {
				return nil, fmt.Errorf("map %s value: %w", mp.Name, err)
			}
			dm.Entries = append(dm.Entries, MapsDocEntry{
				Key: fieldMap(mp.Key, e.Key), Value: fieldMap(mp.Value, e.Value),
				KeyBytes: hex.EncodeToString(kb), ValueBytes: hex.EncodeToString(vb),
			})
		}
		doc.Maps = append(doc.Maps, dm)
	}
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

func fieldMap(s ir.Struct, vals []uint64) map[string]uint64 {
	m := make(map[string]uint64, len(vals))
	for i, f := range s.Fields {
		if i < len(vals) {
			m[f.Name] = vals[i]
		}
	}
	return m
}

// EncodeStruct lays vals out as s describes: little-endian fields, except
// big-endian ones, at their natural offsets.
func EncodeStruct(s ir.Struct, vals []uint64) ([]byte, error) {
	if len(vals) != len(s.Fields) {
		return nil, fmt.Errorf("%s has %d fields, got %d values", s.Name, len(s.Fields), len(vals))
	}
	offs, size := s.Offsets()
	b := make([]byte, size)
	for i, f := range s.Fields {
		var order binary.ByteOrder = binary.LittleEndian
		if f.BigEndian {
			order = binary.BigEndian
		}
		dst := b[offs[i] : offs[i]+f.Size]
		switch f.Size {
		case 1:
			dst[0] = byte(vals[i])
		case 2:
			order.PutUint16(dst, uint16(vals[i]))
		case 4:
			order.PutUint32(dst, uint32(vals[i]))
		case 8:
			order.PutUint64(dst, vals[i])
		default:
			return nil, fmt.Errorf("field %s has size %d", f.Name, f.Size)
		}
	}
	return b, nil
}

// String is a one-line summary of a node's artifacts.
func (a *Artifacts) String() string {
	insns := 0
	for _, p := range a.Object.Programs {
		insns += len(p.Insns)
	}
	var att []string
	for _, x := range a.Lowered.Attach {
		att = append(att, x.Device)
	}
	slices.Sort(att)
	att = slices.Compact(att)
	return fmt.Sprintf("%d programs (%d instructions), %d maps, %d rule cookies, devices %s",
		len(a.Object.Programs), insns, len(a.Object.Maps), len(a.Lowered.Cookies), strings.Join(att, ","))
}

//go:build linux

package runtime

// The pin directory holds everything that must outlive the daemon:
//
//	PINDIR/<map>              every map of the datapath, by its manifest name
//	PINDIR/ebpfd-links/<att>  the BPF links of TCX, XDP and cgroup attachments
//	PINDIR/ebpfd-state        the daemon's state (see pinState)
//	PINDIR/ebpfd-journal      incremental applies since the state was written
//
// The bpf filesystem holds BPF objects only, so the state is itself a BPF
// map: a one-element array whose value is the gzipped JSON of pinState. Names
// with a '-' cannot clash with map names, which the compiler makes from
// identifiers; bpffs refuses names with a '.'.

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/ebpfc/ebpfc/compiler"
)

const (
	linksDir     = "ebpfd-links"
	stateName    = "ebpfd-state"
	journalName  = "ebpfd-journal"
	pinNewSuffix = "-new"
	stateFormat  = 1
)

// DefaultPinRoot is where pin directories go by default: PinRoot/NODE.
const DefaultPinRoot = "/sys/fs/bpf/ebpfc"

// pinState is what the daemon records next to its pins so that a restarted
// daemon knows what it owns and what is running.
type pinState struct {
	Format     int    `json:"format"`
	Node       string `json:"node"`
	Generation uint64 `json:"generation"`
	Source     string `json:"source"`
	// Programs by name: the manifest's SHA-256 of the code and the kernel's
	// tag of the loaded program, which tells whether what runs is what the
	// state says.
	Programs map[string]progRecord `json:"programs"`
	// Maps by name, with whether the configuration owns their contents.
	Maps        map[string]mapRecord `json:"maps"`
	Attachments []attachRecord       `json:"attachments"`
	// Qdiscs lists the devices on which ebpfd created the clsact qdisc, the
	// only ones from which --cleanup removes it.
	Qdiscs []string `json:"qdiscs,omitempty"`
}

type progRecord struct {
	SHA256       string `json:"sha256"`
	Tag          string `json:"tag"`
	TailCallSlot *int   `json:"tailCallSlot,omitempty"`
}

type mapRecord struct {
	Type string `json:"type"`
	Sync bool   `json:"sync"`
	// Slots are a program array's slots by program name: an array is kept
	// only when they are unchanged.
	Slots compiler.SlotList `json:"slots,omitempty"`
}

// attachRecord is one attachment ebpfd made.
type attachRecord struct {
	Program   string `json:"program"`
	Hook      string `json:"hook"`   // "tc", "xdp" or "cgroup/<type>"
	Target    string `json:"target"` // device, or cgroup path
	Direction string `json:"direction,omitempty"`
	Endpoint  string `json:"endpoint,omitempty"`
	Mode      string `json:"mode"`
	// Pin is the link's pin, relative to the pin directory ("" for tc-legacy
	// filters, which the qdisc holds).
	Pin string `json:"pin,omitempty"`
}

func (a attachRecord) key() string { return a.Hook + "|" + a.Target + "|" + a.Direction }

func (a attachRecord) String() string {
	s := a.Hook + " " + a.Target
	if a.Direction != "" {
		s += " " + a.Direction
	}
	return s + " (" + a.Program + ")"
}

func newPinState(node string) *pinState {
	return &pinState{Format: stateFormat, Node: node, Programs: map[string]progRecord{}, Maps: map[string]mapRecord{}}
}

// mountBPFFS makes sure the bpf filesystem holding dir is mounted, mounting
// it at /sys/fs/bpf when dir lies under it and nothing is mounted there.
func mountBPFFS(dir string) error {
	root := "/sys/fs/bpf"
	var st unix.Statfs_t
	if err := unix.Statfs(root, &st); err == nil && st.Type == unix.BPF_FS_MAGIC {
		return nil
	}
	rel, err := filepath.Rel(root, dir)
	if err != nil || rel == ".." || len(rel) >= 3 && rel[:3] == "../" {
		// dir is elsewhere: it must already be on a bpf filesystem.
		return checkBPFFS(filepath.Dir(dir))
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return err
	}
	if err := unix.Mount("bpf", root, "bpf", 0, "mode=0700"); err != nil {
		return fmt.Errorf("mounting the bpf filesystem at %s: %w", root, err)
	}
	return nil
}

func checkBPFFS(dir string) error {
	for d := dir; ; d = filepath.Dir(d) {
		var st unix.Statfs_t
		if err := unix.Statfs(d, &st); err == nil {
			if st.Type != unix.BPF_FS_MAGIC {
				return fmt.Errorf("%s is not on a bpf filesystem; choose a pin directory under /sys/fs/bpf (or mount bpffs there)", dir)
			}
			return nil
		}
		if d == filepath.Dir(d) {
			return fmt.Errorf("%s: no such directory", dir)
		}
	}
}

// loadState reads the state pinned in dir, with the journal of the
// incremental applies since it was written; it returns nil, nil when there
// is none.
func loadState(dir string) (*pinState, error) {
	st := newPinState("")
	ok, err := readBlob(dir, stateName, st)
	if err != nil || !ok {
		return nil, err
	}
	if st.Format != stateFormat {
		return nil, fmt.Errorf("the state in %s has format %d, this ebpfd reads %d; run ebpfd --cleanup with the version that wrote it", dir, st.Format, stateFormat)
	}
	var journal []stateDelta
	if _, err := readBlob(dir, journalName, &journal); err != nil {
		return nil, err
	}
	for _, delta := range journal {
		delta.applyTo(st)
	}
	return st, nil
}

// saveState replaces the state pinned in dir, then removes the journal,
// which the new state includes (a journal left by a crash in between is
// applied again on load, which changes nothing).
func saveState(dir string, st *pinState) error {
	if err := writeBlob(dir, stateName, st); err != nil {
		return err
	}
	if err := os.Remove(filepath.Join(dir, journalName)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("removing the state journal: %w", err)
	}
	return nil
}

// stateDelta is what one incremental apply added to the state. Writing the
// whole state takes about 100 ms for a node of 5,000 endpoints (the JSON of
// 20,000 programs); an incremental apply writes its delta to a journal
// instead, which the next full apply folds into the state.
type stateDelta struct {
	Generation  uint64                `json:"generation"`
	Source      string                `json:"source"`
	Programs    map[string]progRecord `json:"programs,omitempty"`
	Maps        map[string]mapRecord  `json:"maps,omitempty"`
	Attachments []attachRecord        `json:"attachments,omitempty"`
	// Slots are program array slots filled, by array and slot.
	Slots map[string]map[int]string `json:"slots,omitempty"`
}

// applyTo adds the delta to st. Applying it twice is applying it once.
func (delta *stateDelta) applyTo(st *pinState) {
	st.Generation, st.Source = delta.Generation, delta.Source
	for name, pr := range delta.Programs {
		st.Programs[name] = pr
	}
	for name, mr := range delta.Maps {
		st.Maps[name] = mr
	}
	for _, rec := range delta.Attachments {
		if i := slices.IndexFunc(st.Attachments, func(a attachRecord) bool { return a.key() == rec.key() }); i >= 0 {
			st.Attachments[i] = rec
		} else {
			st.Attachments = append(st.Attachments, rec)
		}
	}
	for name, slots := range delta.Slots {
		mr := st.Maps[name]
		for i, prog := range slots {
			for len(mr.Slots) <= i {
				mr.Slots = append(mr.Slots, "")
			}
			mr.Slots[i] = prog
		}
		st.Maps[name] = mr
	}
}

// saveJournal replaces the journal pinned in dir.
func saveJournal(dir string, journal []stateDelta) error {
	return writeBlob(dir, journalName, journal)
}

// readBlob reads into v the gzipped JSON pinned in dir as name (see
// writeBlob); ok is false when there is none.
func readBlob(dir, name string, v any) (ok bool, err error) {
	m, err := ebpf.LoadPinnedMap(filepath.Join(dir, name), nil)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("opening %s in %s: %w", name, dir, err)
	}
	defer m.Close()
	buf := make([]byte, m.ValueSize())
	if err := m.Lookup(uint32(0), &buf); err != nil {
		return false, fmt.Errorf("reading %s in %s: %w", name, dir, err)
	}
	n := binary.LittleEndian.Uint32(buf)
	if int(n) > len(buf)-4 {
		return false, fmt.Errorf("%s in %s is corrupt (length %d)", name, dir, n)
	}
	zr, err := gzip.NewReader(bytes.NewReader(buf[4 : 4+n]))
	if err != nil {
		return false, fmt.Errorf("%s in %s is corrupt: %w", name, dir, err)
	}
	js, err := io.ReadAll(zr)
	if err != nil {
		return false, fmt.Errorf("%s in %s is corrupt: %w", name, dir, err)
	}
	if err := json.Unmarshal(js, v); err != nil {
		return false, fmt.Errorf("%s in %s is corrupt: %w", name, dir, err)
	}
	return true, nil
}

// writeBlob pins v, as gzipped JSON in a one-element array map, in dir as
// name: it pins a new map beside the old one and renames it over it, so
// what is pinned is never half-written.
func writeBlob(dir, name string, v any) error {
	js, err := json.Marshal(v)
	if err != nil {
		return err
	}
	var z bytes.Buffer
	zw := gzip.NewWriter(&z)
	zw.Write(js)
	if err := zw.Close(); err != nil {
		return err
	}
	size := (4 + z.Len() + 4095) &^ 4095
	val := make([]byte, size)
	binary.LittleEndian.PutUint32(val, uint32(z.Len()))
	copy(val[4:], z.Bytes())
	m, err := ebpf.NewMap(&ebpf.MapSpec{Name: "ebpfd_state", Type: ebpf.Array, KeySize: 4, ValueSize: uint32(size), MaxEntries: 1})
	if err != nil {
		return fmt.Errorf("creating the %s map: %w", name, err)
	}
	defer m.Close()
	if err := m.Put(uint32(0), val); err != nil {
		return fmt.Errorf("writing the %s map: %w", name, err)
	}
	return pinReplace(m, filepath.Join(dir, name))
}

// pinReplace pins m at path, replacing what is pinned there in one rename.
func pinReplace(m *ebpf.Map, path string) error {
	tmp := path + pinNewSuffix
	os.Remove(tmp)
	if err := m.Pin(tmp); err != nil {
		return fmt.Errorf("pinning %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("pinning %s: %w", path, err)
	}
	return nil
}

//go:build linux

package runtime

// The pin directory holds everything that must outlive the daemon:
//
//	PINDIR/<map>              every map of the datapath, by its manifest name
//	PINDIR/ebpfd-links/<att>  the BPF links of TCX, XDP and cgroup attachments
//	PINDIR/ebpfd-state        the daemon's state (see pinState)
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

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

const (
	linksDir     = "ebpfd-links"
	stateName    = "ebpfd-state"
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
	Slots []string `json:"slots,omitempty"`
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

// loadState reads the state pinned in dir; it returns nil, nil when there is
// none.
func loadState(dir string) (*pinState, error) {
	m, err := ebpf.LoadPinnedMap(filepath.Join(dir, stateName), nil)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("opening the state in %s: %w", dir, err)
	}
	defer m.Close()
	buf := make([]byte, m.ValueSize())
	if err := m.Lookup(uint32(0), &buf); err != nil {
		return nil, fmt.Errorf("reading the state in %s: %w", dir, err)
	}
	n := binary.LittleEndian.Uint32(buf)
	if int(n) > len(buf)-4 {
		return nil, fmt.Errorf("the state in %s is corrupt (length %d)", dir, n)
	}
	zr, err := gzip.NewReader(bytes.NewReader(buf[4 : 4+n]))
	if err != nil {
		return nil, fmt.Errorf("the state in %s is corrupt: %w", dir, err)
	}
	js, err := io.ReadAll(zr)
	if err != nil {
		return nil, fmt.Errorf("the state in %s is corrupt: %w", dir, err)
	}
	st := newPinState("")
	if err := json.Unmarshal(js, st); err != nil {
		return nil, fmt.Errorf("the state in %s is corrupt: %w", dir, err)
	}
	if st.Format != stateFormat {
		return nil, fmt.Errorf("the state in %s has format %d, this ebpfd reads %d; run ebpfd --cleanup with the version that wrote it", dir, st.Format, stateFormat)
	}
	return st, nil
}

// saveState replaces the state pinned in dir: it pins a new state map beside
// the old one and renames it over it, so the state is never half-written.
func saveState(dir string, st *pinState) error {
	js, err := json.Marshal(st)
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
		return fmt.Errorf("creating the state map: %w", err)
	}
	defer m.Close()
	if err := m.Put(uint32(0), val); err != nil {
		return fmt.Errorf("writing the state map: %w", err)
	}
	return pinReplace(m, filepath.Join(dir, stateName))
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

//go:build linux

package compiler_test

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/ebpfc/ebpfc/compiler"
	"github.com/ebpfc/ebpfc/compiler/lower"
	"github.com/ebpfc/ebpfc/compiler/model"
	"github.com/ebpfc/ebpfc/compiler/reference"
	"github.com/ebpfc/ebpfc/internal/randpolicy"
	"github.com/ebpfc/ebpfc/internal/testenv"
	"github.com/ebpfc/ebpfc/runtime"
)

// differentialDir holds the minimised disagreements the differential test
// saves, one txtar per kind of disagreement; TestDifferentialRegressions
// replays them.
const differentialDir = "testdata/differential"

// The default size of the random run: seeds 1..40, 150 probes each. It is
// fixed, so that `make test` is deterministic; EBPFC_DIFF_SEEDS and
// EBPFC_DIFF_PROBES run other seeds and more probes (make fuzz).
const (
	defaultDiffSeeds  = "1-40"
	defaultDiffProbes = 150
	// defaultDiffMinimise bounds the minimisations of one run (each costs
	// up to minimiseBudget compiles and kernel loads); disagreements of
	// kinds beyond it are counted and reported unminimised.
	defaultDiffMinimise = 12
	minimiseBudget      = 400
)

// TestDifferential generates random configurations (internal/randpolicy),
// compiles each, loads every node's programs into the kernel, and sends
// random and adversarial probes through them with BPF_PROG_TEST_RUN and
// through the reference evaluator. At every side a packet crosses (egress
// at the source endpoint, the host firewall of the nodes it leaves and
// arrives at by their devices, ingress at the destination endpoint) both
// must pass or drop it, decided by the same rule, default or header check.
// Replies and ICMP errors about earlier packets of a probe are held to the
// connection model of randpolicy.Compare.
//
// A disagreement is minimised (policies, rules, peers, ports, labels,
// endpoints and packet options dropped while the same kind of disagreement
// remains) and saved under testdata/differential as a txtar named after
// its kind, unless a case of that kind is saved already; the test fails
// naming the file.
//
// Frames shorter than Ethernet + IPv4 (or IPv6) header are never
// generated: the kernel refuses to test-run such tc frames, so they cannot
// be compared.
func TestDifferential(t *testing.T) {
	testenv.RequireKernel(t)
	seeds, err := parseSeeds(envOr("EBPFC_DIFF_SEEDS", defaultDiffSeeds))
	if err != nil {
		t.Fatalf("EBPFC_DIFF_SEEDS: %v", err)
	}
	nProbes, err := envInt("EBPFC_DIFF_PROBES", defaultDiffProbes)
	if err != nil {
		t.Fatal(err)
	}
	maxMinimise, err := envInt("EBPFC_DIFF_MINIMISE", defaultDiffMinimise)
	if err != nil {
		t.Fatal(err)
	}

	var configs, probes, steps, passed, disagreements int
	deciders := map[string]int{} // what the reference decided, by kind
	type kind struct {
		count int
		first string // seed, probe and line of the first occurrence
		saved string // the saved case, when there is one
	}
	kinds := map[string]*kind{}
	minimised := 0
	for _, seed := range seeds {
		gen := randpolicy.Generate(seed)
		cfg, err := randpolicy.Load(gen.Files())
		if err != nil {
			t.Errorf("seed %d: the generated configuration does not load: %v", seed, err)
			continue
		}
		kd, err := loadDifferential(cfg)
		if err != nil {
			t.Errorf("seed %d: %v", seed, err)
			continue
		}
		configs++
		if configs == 1 {
			t.Logf("datapath state emptied before each probe: %s", kd.stateNames())
		}
		ref := reference.New(cfg)
		for i, p := range randpolicy.Probes(gen, seed, nProbes) {
			st, err := kd.compare(ref, p)
			if err != nil {
				t.Fatalf("seed %d probe %d %q: %v", seed, i, p, err)
			}
			probes++
			steps += len(st)
			for _, x := range st {
				deciders[x.Reference.Kind()]++
				if x.Reference.Pass {
					passed++
				}
			}
			j := randpolicy.FirstDisagreement(st)
			if j < 0 {
				continue
			}
			disagreements++
			sig := randpolicy.Signature(p, st[j])
			k := kinds[sig]
			if k != nil {
				k.count++
				continue
			}
			k = &kind{count: 1, first: fmt.Sprintf("seed %d probe %d: %s\n%s", seed, i, p, stepLines(st))}
			kinds[sig] = k
			path := filepath.Join(differentialDir, sig+".txtar")
			if _, err := os.Stat(path); err == nil {
				k.saved = path
				continue
			}
			if minimised >= maxMinimise {
				continue
			}
			minimised++
			saved, calls, err := minimiseDisagreement(gen, p, sig, fmt.Sprintf("seed %d, probe %d", seed, i))
			if err != nil {
				t.Errorf("seed %d probe %d: minimising: %v", seed, i, err)
				continue
			}
			if err := os.MkdirAll(differentialDir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, saved.Format(), 0o644); err != nil {
				t.Fatal(err)
			}
			t.Logf("%s: minimised in %d compiles", path, calls)
			k.saved = path
		}
		stray, err := kd.strayCounts()
		if err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		for _, x := range stray {
			t.Errorf("seed %d: %s", seed, x)
		}
		kd.close()
	}
	t.Logf("%d configs, %d probes (%d packet × side steps), %d disagreements of %d kinds", configs, probes, steps, disagreements, len(kinds))
	var spread []string
	for _, k := range slices.Sorted(maps.Keys(deciders)) {
		spread = append(spread, fmt.Sprintf("%s %d", k, deciders[k]))
	}
	t.Logf("the reference passed %d steps and dropped %d; deciders: %s", passed, steps-passed, strings.Join(spread, ", "))
	sigs := make([]string, 0, len(kinds))
	for sig := range kinds {
		sigs = append(sigs, sig)
	}
	slices.Sort(sigs)
	for _, sig := range sigs {
		k := kinds[sig]
		where := "not minimised (raise EBPFC_DIFF_MINIMISE)"
		if k.saved != "" {
			where = "case in compiler/" + filepath.ToSlash(k.saved)
		}
		t.Errorf("%d disagreements of kind %s; %s; first: %s", k.count, sig, where, k.first)
	}
}

func stepLines(st []randpolicy.Step) string {
	var b strings.Builder
	for _, s := range st {
		b.WriteString("\t" + s.String() + "\n")
	}
	return b.String()
}

// minimiseDisagreement shrinks a configuration and probe while the same
// kind of disagreement (sig) remains, and returns the case to save.
func minimiseDisagreement(gen *randpolicy.Config, p randpolicy.Probe, sig, origin string) (*randpolicy.Saved, int, error) {
	keep := func(c randpolicy.Case) bool {
		st, err := runCase(c.Config.Files(), c.Probe)
		if err != nil {
			return false
		}
		j := randpolicy.FirstDisagreement(st)
		return j >= 0 && randpolicy.Signature(c.Probe, st[j]) == sig
	}
	start := randpolicy.Case{Config: gen, Probe: p}
	if !keep(start) {
		return nil, 1, errors.New("the disagreement does not show again on a fresh load")
	}
	small, calls := randpolicy.Minimise(start, randpolicy.Case.Shrinks, keep, minimiseBudget)
	files := small.Config.Files()
	st, err := runCase(files, small.Probe)
	if err != nil {
		return nil, calls, err
	}
	comment := fmt.Sprintf("Found by TestDifferential (%s), minimised in %d compiles.\n"+
		"Kind: %s\n"+
		"Replayed by TestDifferentialRegressions, which fails until the reference\n"+
		"evaluator and the compiled programs agree on the probe.", origin, calls+1, sig)
	return randpolicy.NewSaved(comment, files, small.Probe, st), calls + 1, nil
}

// runCase loads files, compiles and loads them into the kernel, and
// compares the probe.
func runCase(files map[string][]byte, p randpolicy.Probe) ([]randpolicy.Step, error) {
	cfg, err := randpolicy.Load(files)
	if err != nil {
		return nil, err
	}
	kd, err := loadDifferential(cfg)
	if err != nil {
		return nil, err
	}
	defer kd.close()
	return kd.compare(reference.New(cfg), p)
}

// differentialDatapath is a configuration's programs, every node's, loaded
// into the kernel.
type differentialDatapath struct {
	nodes map[string]*differentialNode
}

type differentialNode struct {
	dp      *runtime.Datapath
	cookies map[uint32]lower.Cookie
	// cookieIDs are the manifest's cookies, the rule_stats entries read
	// around each run; strayCounts checks the others once per
	// configuration.
	cookieIDs []uint32
	reasons   []string
	ruleStats *ebpf.Map
	dropStats *ebpf.Map
	// state are the maps that hold datapath state (connection tracking,
	// fragments): the manifest does not sync them from the configuration,
	// and they are not counters or program arrays. They are emptied before
	// every probe, so that probes are independent.
	state []*ebpf.Map
}

func loadDifferential(cfg *model.Config) (*differentialDatapath, error) {
	arts, err := compiler.Compile(cfg, compiler.Options{})
	if err != nil {
		return nil, fmt.Errorf("compile: %w", err)
	}
	kd := &differentialDatapath{nodes: map[string]*differentialNode{}}
	for _, a := range arts {
		ra, err := runtime.ParseArtifacts(a.Node, a.Files)
		if err != nil {
			kd.close()
			return nil, err
		}
		dp, err := runtime.Load(ra)
		if err != nil {
			kd.close()
			return nil, fmt.Errorf("node %s: %w", a.Node, err)
		}
		n := &differentialNode{
			dp: dp, cookies: map[uint32]lower.Cookie{}, reasons: a.Manifest.DropReasons,
			ruleStats: dp.Collection.Maps["rule_stats"], dropStats: dp.Collection.Maps["drop_stats"],
		}
		kd.nodes[a.Node] = n
		for _, c := range a.Manifest.Cookies {
			n.cookies[c.ID] = c.Cookie
			n.cookieIDs = append(n.cookieIDs, c.ID)
		}
		slices.Sort(n.cookieIDs)
		for _, m := range a.Manifest.Maps {
			switch {
			case m.Sync, m.Name == "rule_stats", m.Name == "drop_stats", m.Type == "prog_array", m.Type == "ringbuf":
				continue
			}
			if km := dp.Collection.Maps[m.Name]; km != nil {
				n.state = append(n.state, km)
			}
		}
		if n.ruleStats == nil || n.dropStats == nil {
			kd.close()
			return nil, fmt.Errorf("node %s: no rule_stats or drop_stats map", a.Node)
		}
	}
	return kd, nil
}

// stateNames lists the state maps of every node, for the log.
func (kd *differentialDatapath) stateNames() string {
	seen := map[string]bool{}
	for _, n := range kd.nodes {
		for _, m := range n.state {
			if info, err := m.Info(); err == nil {
				seen[info.Name] = true
			}
		}
	}
	if len(seen) == 0 {
		return "none"
	}
	return strings.Join(slices.Sorted(maps.Keys(seen)), ", ")
}

func (kd *differentialDatapath) close() {
	for _, n := range kd.nodes {
		n.dp.Close()
	}
}

// compare empties the datapath state and runs the probe through the
// kernel and the reference.
func (kd *differentialDatapath) compare(ref *reference.Evaluator, p randpolicy.Probe) ([]randpolicy.Step, error) {
	for name, n := range kd.nodes {
		for _, m := range n.state {
			if err := clearMap(m); err != nil {
				return nil, fmt.Errorf("node %s: emptying map %s: %w", name, m.String(), err)
			}
		}
	}
	return randpolicy.Compare(ref, p, kd.run)
}

// run runs frame through a side's program and says what decided: the rule
// cookie it counted the packet against, or else the drop reason.
func (kd *differentialDatapath) run(s randpolicy.Side, frame []byte) (randpolicy.Outcome, error) {
	n := kd.nodes[s.NodeName()]
	if n == nil {
		return randpolicy.Outcome{}, fmt.Errorf("no datapath for node %s", s.NodeName())
	}
	prog := n.dp.Collection.Programs[s.Program()]
	if prog == nil && s.Host() {
		// A host that no policy enforces gets no host firewall: its
		// packets pass its devices unjudged.
		return randpolicy.Outcome{Pass: true, Decider: randpolicy.DecidedOpen, Detail: "no program"}, nil
	}
	if prog == nil {
		return randpolicy.Outcome{}, fmt.Errorf("node %s has no program %s", s.NodeName(), s.Program())
	}
	rules0, err := cookieCounts(n.ruleStats, n.cookieIDs)
	if err != nil {
		return randpolicy.Outcome{}, err
	}
	drops0, err := packetCounts(n.dropStats)
	if err != nil {
		return randpolicy.Outcome{}, err
	}
	ret, err := prog.Run(&ebpf.RunOptions{Data: frame})
	if err != nil {
		return randpolicy.Outcome{}, fmt.Errorf("test run of %d bytes: %w", len(frame), err)
	}
	rules1, err := cookieCounts(n.ruleStats, n.cookieIDs)
	if err != nil {
		return randpolicy.Outcome{}, err
	}
	drops1, err := packetCounts(n.dropStats)
	if err != nil {
		return randpolicy.Outcome{}, err
	}
	var o randpolicy.Outcome
	switch ret {
	case 0:
		o.Pass = true
	case 2:
	default:
		return o, fmt.Errorf("%s returned %d, neither pass (0) nor drop (2)", s.Program(), ret)
	}
	var counted []uint32
	for i := range rules1 {
		if rules1[i] != rules0[i] {
			counted = append(counted, n.cookieIDs[i])
		}
	}
	var reasons []string
	for i := range drops1 {
		if drops1[i] != drops0[i] && i < len(n.reasons) {
			reasons = append(reasons, n.reasons[i])
		}
	}
	switch len(counted) {
	case 0:
		o.Decider = randpolicy.DecidedOpen
		if !o.Pass {
			o.Decider, o.Detail = randpolicy.DecidedHeader, strings.Join(reasons, ", ")
		}
	case 1:
		c, ok := n.cookies[counted[0]]
		switch {
		case !ok:
			o.Decider = fmt.Sprintf("cookie %d (not in the manifest)", counted[0])
		case c.Kind == "default-deny":
			o.Decider = randpolicy.DecidedDefaultDeny
		default:
			o.Decider = randpolicy.RuleDecider(c.Kind, c.Policy, c.Direction, c.Rule)
		}
	default:
		o.Decider = fmt.Sprintf("cookies %v", counted)
	}
	return o, nil
}

// cookieCounts reads the packet counters of the given entries of a per-CPU
// stats map, summed over CPUs, in the order of ids. Reading a few dozen
// entries around every run costs far less than reading rule_stats whole
// (an entry for every possible endpoint index's default denies); a count
// against a cookie the manifest does not list shows in strayCounts.
func cookieCounts(m *ebpf.Map, ids []uint32) ([]uint64, error) {
	out := make([]uint64, len(ids))
	var vals []struct{ Packets, Bytes uint64 }
	for i, id := range ids {
		if err := m.Lookup(id, &vals); err != nil {
			return nil, fmt.Errorf("%s[%d]: %w", m.String(), id, err)
		}
		for _, v := range vals {
			out[i] += v.Packets
		}
	}
	return out, nil
}

// strayCounts reports, per node, the rule_stats entries that counted
// packets but are no cookie of the manifest: a program counting against a
// cookie no rule has.
func (kd *differentialDatapath) strayCounts() ([]string, error) {
	var out []string
	for _, name := range slices.Sorted(maps.Keys(kd.nodes)) {
		n := kd.nodes[name]
		all, err := packetCounts(n.ruleStats)
		if err != nil {
			return nil, err
		}
		for id, c := range all {
			if _, ok := n.cookies[uint32(id)]; c != 0 && !ok {
				out = append(out, fmt.Sprintf("node %s: %d packets counted against cookie %d, which the manifest does not list", name, c, id))
			}
		}
	}
	return out, nil
}

// packetCounts reads the packet counters of a per-CPU stats map (a u64
// packets and a u64 bytes per entry), summed over CPUs. It reads the whole
// array in one batch: rule_stats has an entry for every possible endpoint
// index's default denies, tens of thousands.
func packetCounts(m *ebpf.Map) ([]uint64, error) {
	ncpu, err := ebpf.PossibleCPU()
	if err != nil {
		return nil, err
	}
	n := int(m.MaxEntries())
	keys := make([]uint32, n)
	vals := make([]struct{ Packets, Bytes uint64 }, n*ncpu)
	var cursor ebpf.MapBatchCursor
	got, err := m.BatchLookup(&cursor, keys, vals, nil)
	if err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return nil, fmt.Errorf("%s: %w", m.String(), err)
	}
	if got != n {
		return nil, fmt.Errorf("%s: batch lookup read %d of %d entries", m.String(), got, n)
	}
	out := make([]uint64, n)
	for i, k := range keys {
		for c := range ncpu {
			out[k] += vals[i*ncpu+c].Packets
		}
	}
	return out, nil
}

// clearMap empties a state map: deletes every key of a hash-like map,
// zeroes every entry of an array.
func clearMap(m *ebpf.Map) error {
	switch m.Type() {
	case ebpf.Array, ebpf.PerCPUArray:
		zero := make([]byte, m.ValueSize())
		var val any = zero
		if m.Type() == ebpf.PerCPUArray {
			n, err := ebpf.PossibleCPU()
			if err != nil {
				return err
			}
			vals := make([][]byte, n)
			for i := range vals {
				vals[i] = zero
			}
			val = vals
		}
		for i := uint32(0); i < m.MaxEntries(); i++ {
			if err := m.Update(i, val, ebpf.UpdateAny); err != nil {
				return err
			}
		}
		return nil
	}
	var keys [][]byte
	var k []byte
	it := m.Iterate()
	var v []byte
	for it.Next(&k, &v) {
		keys = append(keys, slices.Clone(k))
	}
	if err := it.Err(); err != nil {
		return err
	}
	for _, k := range keys {
		if err := m.Delete(k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return err
		}
	}
	return nil
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func envInt(name string, def int) (int, error) {
	v := os.Getenv(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%s=%q: want a whole number ≥ 0", name, v)
	}
	return n, nil
}

// parseSeeds reads a seed list: "N" alone (seeds 1..N), or a
// comma-separated list of seeds and ranges "A-B".
func parseSeeds(s string) ([]uint64, error) {
	var out []uint64
	parts := strings.Split(s, ",")
	for _, part := range parts {
		lo, hi, isRange := strings.Cut(strings.TrimSpace(part), "-")
		a, err := strconv.ParseUint(lo, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%q: want N, A-B or a comma-separated list of those", s)
		}
		b := a
		if isRange {
			if b, err = strconv.ParseUint(hi, 10, 64); err != nil || b < a {
				return nil, fmt.Errorf("%q: want A-B with A ≤ B", s)
			}
		} else if len(parts) == 1 {
			a = 1
		}
		for x := a; x <= b; x++ {
			out = append(out, x)
		}
	}
	return out, nil
}

package lower

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ebpfc/ebpfc/backend"
	"github.com/ebpfc/ebpfc/compiler/model"
	"github.com/ebpfc/ebpfc/internal/benchcfg"
	"github.com/ebpfc/ebpfc/ir"
)

// compiledPrograms lowers cfg for its first node and generates bytecode,
// returning each program's instructions (as bytes) by name, and the result.
func compiledPrograms(t *testing.T, cfg *model.Config) (map[string][]byte, *Result) {
	t.Helper()
	return generatePrograms(t, cfg, true)
}

// generatePrograms is compiledPrograms, with ir.Check after every pass
// when check is set.
func generatePrograms(t *testing.T, cfg *model.Config, check bool) (map[string][]byte, *Result) {
	t.Helper()
	if errs := Supported(cfg); len(errs) > 0 {
		t.Fatal(errs)
	}
	res, err := Node(cfg, cfg.Nodes[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := ir.Run(res.Module, ir.RunOptions{Check: check}); err != nil {
		t.Fatal(err)
	}
	obj, err := backend.Generate(res.Module)
	if err != nil {
		t.Fatal(err)
	}
	out := make(map[string][]byte)
	for _, p := range obj.Programs {
		var buf bytes.Buffer
		if err := p.Insns.Marshal(&buf, binary.LittleEndian); err != nil {
			t.Fatal(err)
		}
		out[p.Name] = buf.Bytes()
	}
	return out, res
}

func mapByName(res *Result, name string) *ir.Map {
	for _, m := range res.Module.Maps {
		if m.Name == name {
			return m
		}
	}
	return nil
}

// TestStableNumbering adds one endpoint to a node, at the start, in the
// middle and at the end of the node's endpoint order, enforced or open, and
// checks that every program the node had is byte-identical afterwards, that
// the node-wide maps keep their layout, and that only the new endpoint's
// programs, slots and cookies are new.
func TestStableNumbering(t *testing.T) {
	base := namedPortConfig()
	cases := []*model.Endpoint{
		endpoint("aaa", "first", benchcfg.NodeName, "10.7.0.1", map[string]string{"app": "zzz"}),
		endpoint("ns-000", "pod-00002x", benchcfg.NodeName, "10.7.0.2", map[string]string{"app": "app-0", "tier": "tier-0"}),
		endpoint("ns-000", "selected-new-identity", benchcfg.NodeName, "10.7.0.3", map[string]string{"app": "app-1", "tier": "new"}),
		endpoint("zzz", "last", benchcfg.NodeName, "10.7.0.4", map[string]string{"app": "api"}),
	}
	before, resBefore := compiledPrograms(t, base)
	for _, ep := range cases {
		t.Run(ep.ID(), func(t *testing.T) {
			next := benchcfg.WithEndpoint(base, ep)
			after, resAfter := compiledPrograms(t, next)
			for name, insns := range before {
				got, ok := after[name]
				if !ok {
					t.Errorf("program %s is gone", name)
					continue
				}
				if !bytes.Equal(insns, got) {
					t.Errorf("program %s changed when %s was added", name, ep.ID())
				}
			}
			var added []string
			for name := range after {
				if _, ok := before[name]; !ok {
					added = append(added, name)
				}
			}
			slices.Sort(added)
			stem := strings.NewReplacer("-", "_", "/", "_").Replace(ep.ID())
			for _, name := range added {
				if !strings.Contains(name, stem) {
					t.Errorf("program %s is new, but not %s's", name, ep.ID())
				}
			}
			if len(added) < 2 {
				t.Errorf("new programs %v, want at least the two entry programs of %s", added, ep.ID())
			}
			for _, name := range []string{progArrayMap, ruleStatsMap} {
				mb, ma := mapByName(resBefore, name), mapByName(resAfter, name)
				if mb.MaxEntries != ma.MaxEntries {
					t.Errorf("map %s: %d entries before, %d after", name, mb.MaxEntries, ma.MaxEntries)
				}
			}
			sb, sa := mapByName(resBefore, progArrayMap).Slots, mapByName(resAfter, progArrayMap).Slots
			for i, prog := range sb {
				if prog != "" && (i >= len(sa) || sa[i] != prog) {
					t.Errorf("slot %d held %s, now %q", i, prog, sa[i])
				}
			}
			cookies := make(map[uint32]Cookie)
			for _, c := range resBefore.Cookies {
				cookies[c.ID] = c
			}
			for _, c := range resAfter.Cookies {
				old, ok := cookies[c.ID]
				switch {
				case ok && (old.Endpoint != c.Endpoint || old.Direction != c.Direction || old.Kind != c.Kind):
					t.Errorf("cookie %d was %+v, now %+v", c.ID, old, c)
				case !ok && c.Endpoint != ep.ID():
					t.Errorf("cookie %d is new, but not %s's: %+v", c.ID, ep.ID(), c)
				}
			}
			refs := make(map[string]uint32)
			for _, r := range resBefore.Endpoints {
				refs[r.ID] = r.Index
			}
			for _, r := range resAfter.Endpoints {
				if old, ok := refs[r.ID]; ok && old != r.Index {
					t.Errorf("endpoint %s had index %d, now %d", r.ID, old, r.Index)
				}
			}
		})
	}
}

// TestEndpointIndexes checks the numbering itself: indexes are distinct and
// in range, do not depend on the order of the endpoints, collisions probe
// upwards in (hash, ID) order, and the slots and cookies derived from them
// are distinct.
func TestEndpointIndexes(t *testing.T) {
	var eps []*model.Endpoint
	byHash := make(map[uint32][]*model.Endpoint)
	var collision []*model.Endpoint
	for i := 0; collision == nil || len(eps) < 3000; i++ {
		ep := &model.Endpoint{Namespace: fmt.Sprintf("ns-%d", i%7), Name: fmt.Sprintf("pod-%d", i)}
		eps = append(eps, ep)
		h := endpointIndexHash(ep.ID())
		byHash[h] = append(byHash[h], ep)
		if len(byHash[h]) == 2 && collision == nil {
			collision = byHash[h]
		}
	}
	idx := endpointIndexes(eps)
	seen := make(map[uint32]string)
	for _, ep := range eps {
		n := idx[ep]
		if n < 1 || n >= EndpointIndexes {
			t.Fatalf("%s: index %d out of [1, %d)", ep.ID(), n, EndpointIndexes)
		}
		if other, ok := seen[n]; ok {
			t.Fatalf("%s and %s share index %d", ep.ID(), other, n)
		}
		seen[n] = ep.ID()
	}
	// The first of two endpoints with the same hash, by ID, takes the
	// hashed index unless an endpoint of a lower hash probed onto it.
	a, b := collision[0], collision[1]
	if a.ID() > b.ID() {
		a, b = b, a
	}
	if idx[a] == idx[b] || idx[b] == endpointIndexHash(b.ID()) {
		t.Errorf("colliding %s (%d) and %s (%d), both hashing to %d: the later one kept the hashed index", a.ID(), idx[a], b.ID(), idx[b], endpointIndexHash(a.ID()))
	}

	shuffled := slices.Clone(eps)
	rand.New(rand.NewPCG(1, 2)).Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	if diff := cmp.Diff(idx, endpointIndexes(shuffled)); diff != "" {
		t.Errorf("the numbering depends on the order of the endpoints:\n%s", diff)
	}

	l := &lowering{index: idx, numRuleCookies: 17}
	slots := make(map[int64]bool)
	cookies := make(map[uint32]bool)
	for _, ep := range eps {
		for _, dir := range []direction{ingress, egress} {
			for _, fam := range []int{familyIPv4, familyIPv6} {
				s := l.tailCallSlot(ep, dir, fam)
				if s < slotsPerIndex || s >= ProgArraySize || slots[s] {
					t.Fatalf("%s %s family %d: slot %d repeated or out of range", ep.ID(), dir, fam, s)
				}
				slots[s] = true
			}
			c := l.defaultDenyCookie(ep, dir)
			if c <= 17 || c >= l.ruleStatsSize() || cookies[c] {
				t.Fatalf("%s %s: default-deny cookie %d repeated or out of (17, %d)", ep.ID(), dir, c, l.ruleStatsSize())
			}
			cookies[c] = true
		}
	}
}

// TestTooManyEndpoints checks that a node with more endpoints than indexes
// is refused at the node, not numbered with repeats.
func TestTooManyEndpoints(t *testing.T) {
	cfg := benchcfg.Node(EndpointIndexes, 0)
	_, err := Node(cfg, cfg.Nodes[0])
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("runs %d endpoints", EndpointIndexes)) {
		t.Fatalf("Node with %d endpoints: %v, want an error naming the count", EndpointIndexes, err)
	}
}

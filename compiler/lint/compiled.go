package lint

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/ebpfc/ebpfc/compiler"
	"github.com/ebpfc/ebpfc/compiler/model"
	"github.com/ebpfc/ebpfc/source"
)

// defaultMapSizes are the sizes the compiler gives the maps that
// settings.mapSizes can size when the setting is absent. They mirror
// package lower's defaults; a test holds them to what the compiler emits.
var defaultMapSizes = map[string]uint32{"policy": 16384, "ipcache": 16384}

// unlimitedMapSize replaces the configured sizes when lint compiles, so
// that the compiler reports every map's real entry count instead of
// stopping at the first map that is too small.
const unlimitedMapSize = 1<<31 - 1

// The key structs that tell which setting sizes a compiled map.
var mapSizeOfKey = map[string]string{"policy_key": "policy", "ipcache_key": "ipcache", "ipcache_cidr_key": "ipcache"}

// checkCompiled compiles the configuration for every node, with the map
// sizes lifted, and checks the result: map entries against the configured
// sizes (EBPFC010) and each program's processed-instruction estimate
// against the verifier budget (EBPFC011). When the compiler rejects the
// configuration, its errors become findings (EBPFC012) and the two checks
// cannot run.
func (l *linter) checkCompiled() error {
	cfg := *l.cfg
	cfg.Settings.MapSizes = maps.Clone(l.cfg.Settings.MapSizes)
	if cfg.Settings.MapSizes == nil {
		cfg.Settings.MapSizes = map[string]uint32{}
	}
	for name := range defaultMapSizes {
		cfg.Settings.MapSizes[name] = unlimitedMapSize
	}
	arts, err := compiler.Compile(&cfg, compiler.Options{})
	if err != nil {
		errs, ok := source.AsErrors(err)
		if !ok {
			return fmt.Errorf("compiling: %w", err)
		}
		for _, e := range errs {
			l.report("EBPFC012", e.Pos, "", nil, "%s", e.Msg)
		}
		return nil
	}
	l.checkMapCapacity(arts)
	l.checkVerifierBudget(arts)
	return nil
}

// mapSize returns the configured size of the maps settings.mapSizes.name
// sizes.
func (l *linter) mapSize(name string) uint32 {
	if n, ok := l.cfg.Settings.MapSizes[name]; ok && n > 0 {
		return n
	}
	return defaultMapSizes[name]
}

func (l *linter) mapSizeRelated(name string) []Related {
	pos, ok := l.cfg.Settings.FieldPos["mapSizes."+name]
	if !ok || !pos.IsValid() {
		return nil
	}
	return []Related{{Pos: pos, Message: fmt.Sprintf("settings.mapSizes.%s is %d", name, l.mapSize(name))}}
}

func (l *linter) checkMapCapacity(arts []*compiler.Artifacts) {
	endpointAt := make(map[source.Pos]*model.Endpoint)
	for _, ep := range l.cfg.Endpoints {
		endpointAt[ep.Pos] = ep
	}
	ipcNeed := 0
	var ipcNodes []string
	for _, a := range arts {
		entries := make(map[string]int)
		for _, c := range a.Lowered.Contents {
			entries[c.Map] = len(c.Entries)
		}
		for _, m := range a.Object.Maps {
			setting, ok := mapSizeOfKey[m.Key.Name]
			n, size := entries[m.Name], l.mapSize(setting)
			if !ok || n <= int(size) {
				continue
			}
			if setting == "ipcache" {
				// The ipcache is two maps, either of which may be too
				// small: name the node once.
				ipcNeed = max(ipcNeed, n)
				if !slices.Contains(ipcNodes, a.Node) {
					ipcNodes = append(ipcNodes, a.Node)
				}
				continue
			}
			who := "map " + m.Name + " on node " + a.Node
			if ep := endpointAt[m.Pos]; ep != nil {
				who = "endpoint " + ep.ID()
			}
			l.report("EBPFC010", m.Pos,
				fmt.Sprintf("Set settings.mapSizes.policy to at least %d, or merge the rules, ports and CIDRs of the policies that select it.", n),
				l.mapSizeRelated(setting),
				"%s needs %d policy map entries, but settings.mapSizes.policy is %d", who, n, size)
		}
	}
	if len(ipcNodes) > 0 {
		pos := l.cfg.Cluster.Pos
		if p, ok := l.cfg.Settings.FieldPos["mapSizes.ipcache"]; ok && p.IsValid() {
			pos = p
		}
		nodes := "node " + ipcNodes[0]
		if len(ipcNodes) > 1 {
			nodes = "nodes " + strings.Join(limit(slices.Compact(ipcNodes), 3), ", ")
		}
		l.report("EBPFC010", pos,
			fmt.Sprintf("Set settings.mapSizes.ipcache to at least %d, or use fewer distinct CIDR prefixes in policies.", ipcNeed),
			l.mapSizeRelated("ipcache"),
			"the ipcache of %s needs %d entries, but settings.mapSizes.ipcache is %d", nodes, ipcNeed, l.mapSize("ipcache"))
	}
}

func (l *linter) checkVerifierBudget(arts []*compiler.Artifacts) {
	for _, a := range arts {
		for _, p := range a.Object.Programs {
			n, lowerBound := l.opts.Estimate(a.Object, p)
			if n <= l.opts.VerifierBudget {
				continue
			}
			qual := "an estimated"
			if lowerBound {
				qual = "at least"
			}
			l.report("EBPFC011", p.Pos, "", nil,
				"program %s of node %s needs %s %d processed instructions in the kernel's verifier, above the budget of %d",
				p.Name, a.Node, qual, n, l.opts.VerifierBudget)
		}
	}
}

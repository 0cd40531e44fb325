package lint

import (
	"testing"

	"github.com/ebpfc/ebpfc/compiler"
	"github.com/ebpfc/ebpfc/compiler/load"
)

// TestDefaultMapSizesMatchCompiler holds defaultMapSizes and mapSizeOfKey
// to the compiler: without settings.mapSizes, every map whose key struct
// mapSizeOfKey names has the size lint assumes, and both kinds of map are
// there.
func TestDefaultMapSizesMatchCompiler(t *testing.T) {
	dir := writeConfig(t, policy(`
policies: web: p: {
	endpointSelector: {}
	ingress: [{fromCIDR: ["192.0.2.0/24"]}]
}`), true)
	cfg, err := load.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	arts, err := compiler.Compile(cfg, compiler.Options{})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, a := range arts {
		for _, m := range a.Object.Maps {
			setting, ok := mapSizeOfKey[m.Key.Name]
			if !ok {
				continue
			}
			seen[setting] = true
			if m.MaxEntries != defaultMapSizes[setting] {
				t.Errorf("map %s (settings.mapSizes.%s) has %d entries by default; lint assumes %d", m.Name, setting, m.MaxEntries, defaultMapSizes[setting])
			}
		}
	}
	for setting := range defaultMapSizes {
		if !seen[setting] {
			t.Errorf("no compiled map is sized by settings.mapSizes.%s; update mapSizeOfKey", setting)
		}
	}
}

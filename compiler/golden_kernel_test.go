//go:build linux

package compiler_test

import (
	"strings"
	"testing"

	"github.com/ebpfc/ebpfc/internal/packettest"
	"github.com/ebpfc/ebpfc/internal/testenv"
	"github.com/ebpfc/ebpfc/runtime"
)

// TestGoldenKernel loads every program every golden case generates through
// the kernel's verifier, logs the verifier's processed-instruction counts, and
// runs the case's packets through the programs with BPF_PROG_TEST_RUN.
func TestGoldenKernel(t *testing.T) {
	testenv.RequireKernel(t)
	for _, c := range readGolden(t) {
		t.Run(c.name, func(t *testing.T) {
			_, arts, err := compileCase(c, c.names)
			if err != nil {
				t.Fatal(err)
			}
			cases, err := packettest.ParseAll(c.packets)
			if err != nil {
				t.Fatalf("%s: packets: %v", c.path, err)
			}
			if arts == nil {
				if len(cases) > 0 {
					t.Fatalf("%s: has packets but the config does not compile", c.path)
				}
				return
			}
			dps := map[string]*runtime.Datapath{}
			var order []string
			for _, a := range arts {
				ra, err := runtime.ParseArtifacts(a.Node, a.Files)
				if err != nil {
					t.Fatal(err)
				}
				dp, err := runtime.Load(ra)
				if err != nil {
					t.Fatalf("node %s: kernel rejected the object: %v", a.Node, err)
				}
				t.Cleanup(dp.Close)
				for _, st := range dp.Stats {
					t.Logf("node %s: %-36s %4d insns, verifier processed %d", a.Node, st.Name, st.Insns, st.Processed)
				}
				dps[a.Node] = dp
				order = append(order, a.Node)
			}
			reasons := arts[0].Lowered.DropReasons
			for _, pc := range cases {
				node, prog, ok := strings.Cut(pc.Program, "/")
				if !ok {
					prog, node = pc.Program, ""
					for _, n := range order {
						if dps[n].Collection.Programs[prog] != nil {
							node = n
							break
						}
					}
				}
				dp := dps[node]
				if dp == nil || dp.Collection.Programs[prog] == nil {
					t.Errorf("%s: no program %q on any node", c.path, pc.Program)
					continue
				}
				coll := dp.Collection
				if err := packettest.Run(coll.Programs[prog], coll.Maps["rule_stats"], coll.Maps["drop_stats"], reasons, pc); err != nil {
					t.Errorf("%s: node %s: %v", c.path, node, err)
				}
			}
		})
	}
}

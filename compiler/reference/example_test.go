package reference_test

import (
	"fmt"
	"net/netip"

	"github.com/ebpfc/ebpfc/compiler/load"
	"github.com/ebpfc/ebpfc/compiler/reference"
)

// Judge connections to the frontend of examples/basic, which takes HTTP and
// HTTPS from anywhere but 203.0.113.0/24.
func ExampleEvaluator_Connection() {
	cfg, err := load.Load("../../examples/basic")
	if err != nil {
		fmt.Println(err)
		return
	}
	e := reference.New(cfg)
	frontend := netip.MustParseAddr("10.244.1.10")
	for _, src := range []string{"198.51.100.7", "203.0.113.9"} {
		v := e.Connection(reference.Flow{
			Src: netip.MustParseAddr(src), Dst: frontend,
			Protocol: 6, SrcPort: 40000, DstPort: 80,
		})
		fmt.Printf("%s: %v at %s\n", src, v, v.Decider.Pos)
	}
	// Output:
	// 198.51.100.7: allow (allow web/frontend-0 ingress web/frontend-ingress ingress[0]) at ../../examples/basic/policies.cue:9:13
	// 203.0.113.9: deny (default-deny web/frontend-0 ingress) at -
}

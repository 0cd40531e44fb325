package benchcfg

import (
	"cmp"
	"slices"
	"strings"
	"testing"

	"github.com/ebpfc/ebpfc/compiler/model"
)

func sorted(t *testing.T, cfg *model.Config) {
	t.Helper()
	if !slices.IsSortedFunc(cfg.Endpoints, func(a, b *model.Endpoint) int {
		return cmp.Or(strings.Compare(a.Namespace, b.Namespace), strings.Compare(a.Name, b.Name))
	}) {
		t.Error("endpoints not sorted")
	}
	seen := map[string]bool{}
	for _, ep := range cfg.Endpoints {
		for _, a := range ep.Addresses {
			if seen[a.String()] {
				t.Errorf("address %s used twice", a)
			}
			seen[a.String()] = true
		}
	}
}

// TestPacketSeries checks the packet series' shape at a small size: the
// numbers of peers and rules, and which endpoints hold the allowed and
// denied addresses.
func TestPacketSeries(t *testing.T) {
	const n = 5
	holder := func(cfg *model.Config, want string) *model.Endpoint {
		for _, ep := range cfg.Endpoints {
			if ep.Addresses[0].String() == want {
				return ep
			}
		}
		t.Fatalf("no endpoint has %s", want)
		return nil
	}

	ids := PolicyIdentities(n)
	sorted(t, ids)
	if len(ids.Endpoints) != n+2 || len(ids.Policies) != 1 || len(ids.Policies[0].Ingress) != n {
		t.Fatalf("identities: %d endpoints, %d policies, want %d and 1 with %d rules", len(ids.Endpoints), len(ids.Policies), n+2, n)
	}
	last := ids.Policies[0].Ingress[n-1].Endpoints[0].MatchLabels["peer"]
	if got := holder(ids, AllowedPeer.String()).Labels["peer"]; got != last {
		t.Errorf("AllowedPeer is held by peer=%q, want the last rule's peer %q", got, last)
	}
	if got := holder(ids, DeniedPeer.String()).Labels; got["peer"] != "" {
		t.Errorf("DeniedPeer's endpoint has labels %v, which a rule names", got)
	}

	ipc := IPCache(n)
	sorted(t, ipc)
	if len(ipc.Endpoints) != n+2 || len(ipc.Policies[0].Ingress) != 1 {
		t.Fatalf("ipcache: %d endpoints, %d rules, want %d and 1", len(ipc.Endpoints), len(ipc.Policies[0].Ingress), n+2)
	}
	if got := holder(ipc, AllowedPeer.String()).Labels["app"]; got != "client" {
		t.Errorf("AllowedPeer's endpoint is app=%q, want client", got)
	}
}

// TestNode checks Node's counts and that WithEndpoint leaves its input
// alone.
func TestNode(t *testing.T) {
	cfg := Node(250, 30)
	sorted(t, cfg)
	if len(cfg.Endpoints) != 250 || len(cfg.Policies) != 30 || len(cfg.Namespaces) != 2 {
		t.Fatalf("%d endpoints, %d policies, %d namespaces", len(cfg.Endpoints), len(cfg.Policies), len(cfg.Namespaces))
	}
	ep := &model.Endpoint{Namespace: "ns-000", Name: "a"}
	next := WithEndpoint(cfg, ep)
	if len(cfg.Endpoints) != 250 || len(next.Endpoints) != 251 || next.Endpoints[0] != ep {
		t.Errorf("WithEndpoint: %d and %d endpoints, first %s", len(cfg.Endpoints), len(next.Endpoints), next.Endpoints[0].ID())
	}
	sorted(t, next)
}

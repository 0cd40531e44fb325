package schemas

import (
	"github.com/ebpfc/ebpfc/internal/testenv"

	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"cuelang.org/go/cue"
	"cuelang.org/go/cue/build"
	"cuelang.org/go/cue/cuecontext"
	"cuelang.org/go/cue/errors"
	"cuelang.org/go/cue/parser"
)

// vet does what `cue vet schema.cue file.cue...` does: it unifies the
// printed schema with user files in one package and checks that the result
// is concrete and valid.
func vet(t *testing.T, files map[string]string) error {
	t.Helper()
	inst := build.NewContext().NewInstance("", nil)
	schema, err := parser.ParseFile("schema.cue", Source())
	if err != nil {
		t.Fatalf("Source does not parse: %v", err)
	}
	if err := inst.AddSyntax(schema); err != nil {
		t.Fatal(err)
	}
	for name, src := range files {
		f, err := parser.ParseFile(name, src)
		if err != nil {
			return err
		}
		if err := inst.AddSyntax(f); err != nil {
			return err
		}
	}
	v := cuecontext.New().BuildInstance(inst)
	if err := v.Validate(cue.Concrete(true), cue.All()); err != nil {
		return err
	}
	return v.Err()
}

func TestSourceAlone(t *testing.T) {
	if err := vet(t, nil); err != nil {
		t.Fatalf("the schema alone does not vet: %v", errors.Details(err, nil))
	}
	if !strings.HasPrefix(Source(), "// The ebpfc configuration schema.") {
		t.Errorf("Source does not start with its comment")
	}
	if n := strings.Count(Source(), "\npackage "); n != 1 {
		t.Errorf("Source has %d package clauses", n)
	}
}

func TestVet(t *testing.T) {
	good := `package ebpfc

nodes: "node-a": {addresses: ["10.0.0.1"], devices: ["eth0"]}
endpoints: web: a: {node: "node-a", interface: "lxc-a", addresses: ["10.1.0.1"], labels: app: "web"}
policies: web: p: {
	endpointSelector: matchLabels: app: "web"
	ingress: [{fromCIDRSet: [{cidr: "10.0.0.0/8", except: ["10.9.0.0/16"]}], toPorts: [{ports: [{port: 80, protocol: "TCP"}]}]}]
}
services: web: s: {ports: [{port: 80, targetPort: "http"}], selector: app: "web"}
nat: masquerade: devices: ["eth0"]
tests: t: {from: "web/a", to: "10.0.0.1", port: 80, expect: "deny"}
`
	if err := vet(t, map[string]string{"good.cue": good}); err != nil {
		t.Fatalf("valid file rejected: %v", errors.Details(err, nil))
	}

	bad := []struct{ name, src, want string }{
		{"port out of range", `policies: web: p: {endpointSelector: {}, ingress: [{toPorts: [{ports: [{port: 70000}]}]}]}`, "out of bound <=65535"},
		{"bad IP", `nodes: n: {addresses: ["10.0.0.256"]}`, "does not satisfy net.IP"},
		{"bad CIDR", `cluster: podCIDRs: ["10.0.0.0/40"]`, "does not satisfy net.IPCIDR"},
		{"unknown field", `nodes: n: {addresses: ["10.0.0.1"], zones: "a"}`, "field not allowed"},
		{"unknown section", `polices: {}`, "unknown section"},
		{"bad enum", `settings: verdictEvents: "some"`, "conflicting values"},
		{"missing required", `endpoints: web: a: {node: "n", addresses: ["10.0.0.1"]}`, "field is required but not present"},
		{"namespace label", `namespaces: web: labels: "kubernetes.io/metadata.name": "db"`, "conflicting values"},
		{"bad entity", `policies: web: p: {endpointSelector: {}, egress: [{toEntities: ["internet"]}]}`, "conflicting values"},
		{"bad port name", `endpoints: web: a: {node: "n", interface: "i", addresses: ["10.0.0.1"], namedPorts: HTTP: port: 80}`, "field not allowed"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			err := vet(t, map[string]string{"bad.cue": "package ebpfc\n\n" + tt.src + "\n"})
			if err == nil {
				t.Fatal("accepted")
			}
			if got := errors.Details(err, nil); !strings.Contains(got, tt.want) {
				t.Errorf("error %q does not contain %q", got, tt.want)
			}
			// cue vet places these two at the schema line that states
			// the rule; the message still names the path.
			if tt.name == "unknown section" || tt.name == "missing required" {
				return
			}
			if !strings.Contains(errors.Details(err, nil), "bad.cue:") {
				t.Errorf("error does not point into the user's file: %v", errors.Details(err, nil))
			}
		})
	}
}

// TestVetExamples checks the examples as a user would: with the Go API, and
// with the cue command (make test installs it; with EBPFC_REQUIRE_KERNEL=1,
// as CI runs, a missing cue command is a failure rather than a skip).
func TestVetExamples(t *testing.T) {
	dirs, _ := filepath.Glob("../examples/*")
	if len(dirs) == 0 {
		t.Fatal("no examples under ../examples")
	}
	cueCmd, err := exec.LookPath("cue")
	if err != nil && testenv.Required() {
		t.Fatalf("the cue command is required (EBPFC_REQUIRE_KERNEL=1); make deps installs it into bin/: %v", err)
	}
	for _, dir := range dirs {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			names, _ := filepath.Glob(filepath.Join(dir, "*.cue"))
			files := map[string]string{}
			for _, name := range names {
				data, err := os.ReadFile(name)
				if err != nil {
					t.Fatal(err)
				}
				files[name] = string(data)
			}
			if err := vet(t, files); err != nil {
				t.Fatalf("%s: %v", dir, errors.Details(err, nil))
			}
			if cueCmd == "" {
				t.Logf("cue command not found: checked with the Go API only (make deps installs it)")
				return
			}
			schema := filepath.Join(t.TempDir(), "schema.cue")
			if err := os.WriteFile(schema, []byte(Source()), 0o644); err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command(cueCmd, append([]string{"vet", schema}, names...)...).CombinedOutput()
			if err != nil {
				t.Fatalf("cue vet: %v\n%s", err, out)
			}
		})
	}
}

package ir

import (
	"math/rand/v2"
	"regexp"
	"testing"
)

// TestIsBareName holds isBareName to its definition as regular
// expressions: a bare name matches ^[A-Za-z_][A-Za-z0-9_.\-]*$, does not
// match ^v[0-9] and is not a keyword.
func TestIsBareName(t *testing.T) {
	ident := regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.\-]*$`)
	valueLike := regexp.MustCompile(`^v[0-9]`)
	want := func(s string) bool { return ident.MatchString(s) && !valueLike.MatchString(s) && !keywords[s] }
	cases := []string{
		"", "a", "_", "A9", "9a", "-a", ".a", "a-b.c_d", "v", "v1", "v1x", "va", "V1", "ret", "load.u16", "load.u17",
		"to_default_web", "pol_ns_000_pod_00001", "a b", "é", "a\x00", "a/b", "jump", "jumpx", "x\n",
	}
	for _, s := range cases {
		if got := isBareName(s); got != want(s) {
			t.Errorf("isBareName(%q) = %v, want %v", s, got, want(s))
		}
	}
	const alphabet = "av0_.-Z9 é\"r"
	rng := rand.New(rand.NewPCG(1, 2))
	for range 20000 {
		b := make([]byte, rng.IntN(6))
		for i := range b {
			b[i] = alphabet[rng.IntN(len(alphabet))]
		}
		if s := string(b); isBareName(s) != want(s) {
			t.Errorf("isBareName(%q) = %v, want %v", s, isBareName(s), want(s))
		}
	}
}

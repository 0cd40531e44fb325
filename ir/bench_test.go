package ir

import "testing"

func BenchmarkParseSample(b *testing.B) {
	src := []byte(sampleModule().String())
	for b.Loop() {
		if _, err := Parse("s.ir", src); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCheckAndPassesSample(b *testing.B) {
	for b.Loop() {
		m := sampleModule()
		if err := Run(m, RunOptions{Check: true}); err != nil {
			b.Fatal(err)
		}
	}
}

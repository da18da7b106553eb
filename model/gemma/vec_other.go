//go:build !amd64

package gemma

// hasAVX2 is false off amd64: vec.go runs its scalar loops only.
const hasAVX2 = false

func maxAVX2(x []float32) float32                  { panic("gemma: maxAVX2 off amd64") }
func expSubSumAVX2(x []float32, m float32) float32 { panic("gemma: expSubSumAVX2 off amd64") }
func scaleAVX2(x []float32, s float32)             { panic("gemma: scaleAVX2 off amd64") }
func geluMulAVX2(g, u []float32)                   { panic("gemma: geluMulAVX2 off amd64") }

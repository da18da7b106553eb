//go:build !amd64

package vec

// hasAVX2 is false off amd64: vec.go runs its scalar loops only. It is a
// variable only to match the amd64 build (tests set it).
var hasAVX2 = false

func maxAVX2(x []float32) float32                  { panic("vec: maxAVX2 off amd64") }
func expSubSumAVX2(x []float32, m float32) float32 { panic("vec: expSubSumAVX2 off amd64") }
func scaleAVX2(x []float32, s float32)             { panic("vec: scaleAVX2 off amd64") }
func siluMulAVX2(g, u []float32)                   { panic("vec: siluMulAVX2 off amd64") }
func geluMulAVX2(g, u []float32)                   { panic("vec: geluMulAVX2 off amd64") }

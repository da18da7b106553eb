package cpu

import (
	"math"
	"sync"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/gonum"
)

// Cache blocking of the GEMM driver (Goto/BLIS). A packed A panel holds mr
// rows interleaved per k (a[l*mr+r]); a packed B panel holds nr columns per k
// (b[l*nr+c]). The kc×nr B micro-panel stays in L1, the mc×kc A block in L2
// and the kc×nc B block in L2/L3.
const (
	kc    = 256
	mcMax = 144 // rounded down to a multiple of the kernel's mr
	nc    = 2048
	// maxTile bounds mr*nr of every kernel; maxNR bounds nr.
	maxTile = 512
	maxNR   = 32
)

// minParallelFlops is the size (2·m·n·k) below which a product runs on one
// goroutine.
const minParallelFlops = 2 << 20

type float interface{ float32 | float64 }

// microKernel computes the mr×nr tile T = Ap·Bp over k steps from packed
// panels and stores C = T + beta·C at c with row stride ldc (elements); when
// beta is 0, C is not read. fn must read exactly k*mr elements from a and
// k*nr from b, and touch only the mr×nr tile of C. A microKernel with a nil
// fn stands for gonum's GEMM instead of the blocked driver.
type microKernel[T float] struct {
	name   string
	mr, nr int
	fn     func(k int, a, b, c *T, ldc int, beta T)
}

// genericKernel32 and genericKernel64 stand for gonum's pure-Go GEMM (with
// gonum's SSE helpers on amd64), used where no assembly micro-kernel runs: it
// is several times faster than a scalar Go micro-kernel behind the driver.
var (
	genericKernel32 = microKernel[float32]{name: "generic"}
	genericKernel64 = microKernel[float64]{name: "generic"}
)

// workspace is one goroutine's packing buffers.
type workspace[T float] struct {
	a    []T // mcMax*kc
	b    []T // kc*nc rounded up to maxNR
	tile [maxTile]T
}

var (
	workspaces32 = sync.Pool{New: func() any { return newWorkspace[float32]() }}
	workspaces64 = sync.Pool{New: func() any { return newWorkspace[float64]() }}
)

func newWorkspace[T float]() *workspace[T] {
	return &workspace[T]{a: make([]T, mcMax*kc), b: make([]T, kc*(nc+maxNR))}
}

func pool[T float]() *sync.Pool {
	var z T
	if _, ok := any(z).(float32); ok {
		return &workspaces32
	}
	return &workspaces64
}

// gonumGemm runs gonum's GEMM of the matching precision.
func gonumGemm[T float](transA, transB bool, m, n, k int, alpha T, a []T, lda int, b []T, ldb int, beta T, c []T, ldc int) {
	impl := gonum.Implementation{}
	switch a := any(a).(type) {
	case []float32:
		impl.Sgemm(blasTrans(transA), blasTrans(transB), m, n, k, float32(alpha), a, lda, any(b).([]float32), ldb, float32(beta), any(c).([]float32), ldc)
	case []float64:
		impl.Dgemm(blasTrans(transA), blasTrans(transB), m, n, k, float64(alpha), a, lda, any(b).([]float64), ldb, float64(beta), any(c).([]float64), ldc)
	}
}

// gemm is the GEMM driver; arguments are already checked.
func gemm[T float](kern microKernel[T], threads int, transA, transB bool, m, n, k int, alpha T, a []T, lda int, b []T, ldb int, beta T, c []T, ldc int) {
	if m == 0 || n == 0 {
		return
	}
	if k == 0 || alpha == 0 {
		scale(m, n, beta, c, ldc)
		return
	}
	if kern.fn == nil {
		gonumGemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
		return
	}
	p := gemmParams[T]{kern: kern, transA: transA, transB: transB, k: k, alpha: alpha, a: a, lda: lda, b: b, ldb: ldb, beta: beta, c: c, ldc: ldc}
	if threads <= 1 || 2*m*n*k < minParallelFlops {
		p.run(0, m, 0, n)
		return
	}
	p.parallel(threads, m, n)
}

// gramLower writes the lower triangle of XᵀX into the n×n float32 matrix c
// (row stride n), where x is k×n row-major (k >= 1); micro-tiles wholly above
// the diagonal are skipped, so elements above the diagonal are unspecified.
// It calls done(m0, m1) once rows [m0, m1) of the lower triangle are final,
// on the goroutine that computed them; the ranges partition [0, n).
func gramLower(kern microKernel[float32], threads int, n, k int, x []float32, c []float32, done func(m0, m1 int)) {
	if n == 0 {
		return
	}
	if kern.fn == nil {
		gonum.Implementation{}.Sgemm(blas.Trans, blas.NoTrans, n, n, k, 1, x, n, x, n, 0, c, n)
		done(0, n)
		return
	}
	p := gemmParams[float32]{kern: kern, transA: true, k: k, alpha: 1, a: x, lda: n, b: x, ldb: n, c: c, ldc: n, lower: true}
	tm := ceilDiv(n, kern.mr)
	parts := min(threads, tm)
	if parts <= 1 || n*n*k < minParallelFlops {
		p.run(0, n, 0, n)
		done(0, n)
		return
	}
	// Row bands of equal triangle area: band i ends at n·sqrt((i+1)/parts).
	var wg sync.WaitGroup
	prev := 0
	for i := range parts {
		end := tm
		if i < parts-1 {
			end = int(float64(tm)*math.Sqrt(float64(i+1)/float64(parts)) + 0.5)
		}
		m0, m1 := prev*kern.mr, min(end*kern.mr, n)
		prev = end
		if m0 >= m1 {
			continue
		}
		wg.Go(func() {
			p.run(m0, m1, 0, m1)
			done(m0, m1)
		})
	}
	wg.Wait()
}

type gemmParams[T float] struct {
	kern           microKernel[T]
	transA, transB bool
	k              int
	alpha, beta    T
	a, b, c        []T
	lda, ldb, ldc  int
	lower          bool // skip micro-tiles wholly above the diagonal
}

// parallel computes C on threads goroutines. It splits C into a pm×pn grid
// of blocks in whole micro-tiles, one block per goroutine, choosing the grid
// that packs the least (the smallest sum of block sides).
func (p *gemmParams[T]) parallel(threads, m, n int) {
	mr, nr := p.kern.mr, p.kern.nr
	tm, tn := ceilDiv(m, mr), ceilDiv(n, nr)
	bestPm, bestPn, best := 1, 1, -1.0
	for pm := 1; pm <= threads; pm++ {
		if threads%pm != 0 {
			continue
		}
		pn := threads / pm
		if pm > tm || pn > tn {
			continue
		}
		cost := float64(m)/float64(pm) + float64(n)/float64(pn)
		if best < 0 || cost < best {
			bestPm, bestPn, best = pm, pn, cost
		}
	}
	if best < 0 { // fewer tiles than threads along one side: split the other.
		if tm >= tn {
			bestPm, bestPn = min(threads, tm), 1
		} else {
			bestPm, bestPn = 1, min(threads, tn)
		}
	}
	var wg sync.WaitGroup
	for bi := range bestPm {
		m0, m1 := split(tm, bestPm, bi)
		m0, m1 = m0*mr, min(m1*mr, m)
		for bj := range bestPn {
			n0, n1 := split(tn, bestPn, bj)
			n0, n1 = n0*nr, min(n1*nr, n)
			if m0 >= m1 || n0 >= n1 {
				continue
			}
			wg.Go(func() { p.run(m0, m1, n0, n1) })
		}
	}
	wg.Wait()
}

func ceilDiv(a, b int) int { return (a + b - 1) / b }

// split returns the i-th of parts near-equal ranges of [0, total).
func split(total, parts, i int) (int, int) {
	return total * i / parts, total * (i + 1) / parts
}

// run computes the block C[m0:m1, n0:n1] sequentially.
func (p *gemmParams[T]) run(m0, m1, n0, n1 int) {
	pl := pool[T]()
	ws := pl.Get().(*workspace[T])
	defer pl.Put(ws)
	mc := mcMax / p.kern.mr * p.kern.mr
	// Equal k blocks of at most kc: no short last pass over C.
	kstep := ceilDiv(p.k, ceilDiv(p.k, kc))
	for jc := n0; jc < n1; jc += nc {
		ncb := min(nc, n1-jc)
		for pc := 0; pc < p.k; pc += kstep {
			kcb := min(kstep, p.k-pc)
			beta := p.beta
			if pc > 0 {
				beta = 1
			}
			packB(ws.b, p.b, p.ldb, p.transB, pc, kcb, jc, ncb, p.kern.nr)
			for ic := m0; ic < m1; ic += mc {
				mcb := min(mc, m1-ic)
				packA(ws.a, p.a, p.lda, p.transA, ic, mcb, pc, kcb, p.alpha, p.kern.mr)
				p.macro(ws, mcb, ncb, kcb, ic, jc, beta)
			}
		}
	}
}

// macro runs the micro-kernel over an mcb×ncb block of C at (ic, jc).
func (p *gemmParams[T]) macro(ws *workspace[T], mcb, ncb, kcb, ic, jc int, beta T) {
	fn, mr, nr := p.kern.fn, p.kern.mr, p.kern.nr
	for jr := 0; jr < ncb; jr += nr {
		nw := min(nr, ncb-jr)
		bp := &ws.b[jr*kcb]
		for ir := 0; ir < mcb; ir += mr {
			mh := min(mr, mcb-ir)
			if p.lower && jc+jr > ic+ir+mh-1 {
				continue // wholly above the diagonal
			}
			ap := &ws.a[ir*kcb]
			ci := (ic+ir)*p.ldc + jc + jr
			if mh == mr && nw == nr {
				fn(kcb, ap, bp, &p.c[ci], p.ldc, beta)
				continue
			}
			fn(kcb, ap, bp, &ws.tile[0], nr, 0)
			for i := range mh {
				row := p.c[ci+i*p.ldc : ci+i*p.ldc+nw]
				t := ws.tile[i*nr : i*nr+nw]
				if beta == 0 {
					copy(row, t)
					continue
				}
				for j := range row {
					row[j] = t[j] + beta*row[j]
				}
			}
		}
	}
}

// packA packs alpha·op(A)[i0:i0+mcb, p0:p0+kcb] into panels of mr rows,
// zero-padding the last panel: panel q, step l, row r is at q*mr*kcb+l*mr+r.
func packA[T float](dst, a []T, lda int, trans bool, i0, mcb, p0, kcb int, alpha T, mr int) {
	for q := 0; q*mr < mcb; q++ {
		rows := min(mr, mcb-q*mr)
		d := dst[q*mr*kcb : (q+1)*mr*kcb]
		ib := i0 + q*mr
		if trans { // op(A)(i,l) = a[l*lda+i]: rows of a are contiguous in i.
			for l := range kcb {
				src := a[(p0+l)*lda+ib : (p0+l)*lda+ib+rows]
				dl := d[l*mr : l*mr+mr]
				for r, v := range src {
					dl[r] = alpha * v
				}
				clear(dl[rows:])
			}
			continue
		}
		if rows < mr {
			clear(d)
		}
		r := 0
		if d32, ok := any(d).([]float32); ok && transpose8 != nil && alpha == 1 && kcb >= 8 {
			// Eight rows at a time with 8×8 SIMD transposes, Go for the
			// steps past the last multiple of 8.
			a32 := any(a).([]float32)
			k8 := kcb / 8
			for ; r+8 <= rows; r += 8 {
				_ = a32[(ib+r+7)*lda+p0+k8*8-1] // every row read is in bounds
				_ = d32[(k8*8-1)*mr+r+7]
				transpose8(&a32[(ib+r)*lda+p0], lda, &d32[r], mr, k8)
				for i := range 8 {
					src := a[(ib+r+i)*lda+p0+k8*8 : (ib+r+i)*lda+p0+kcb]
					for l, v := range src {
						d[(k8*8+l)*mr+r+i] = v
					}
				}
			}
		}
		if rows == 6 && mr == 6 { // the AVX2 panel: six streams at once
			s0 := a[(ib+0)*lda+p0 : (ib+0)*lda+p0+kcb]
			s1 := a[(ib+1)*lda+p0 : (ib+1)*lda+p0+kcb]
			s2 := a[(ib+2)*lda+p0 : (ib+2)*lda+p0+kcb]
			s3 := a[(ib+3)*lda+p0 : (ib+3)*lda+p0+kcb]
			s4 := a[(ib+4)*lda+p0 : (ib+4)*lda+p0+kcb]
			s5 := a[(ib+5)*lda+p0 : (ib+5)*lda+p0+kcb]
			for l := range kcb {
				dl := d[l*6 : l*6+6 : l*6+6]
				dl[0] = alpha * s0[l]
				dl[1] = alpha * s1[l]
				dl[2] = alpha * s2[l]
				dl[3] = alpha * s3[l]
				dl[4] = alpha * s4[l]
				dl[5] = alpha * s5[l]
			}
			continue
		}
		// Four rows at a time: four sequential reads, one 4-element write
		// per step.
		for ; r+4 <= rows; r += 4 {
			s0 := a[(ib+r+0)*lda+p0 : (ib+r+0)*lda+p0+kcb]
			s1 := a[(ib+r+1)*lda+p0 : (ib+r+1)*lda+p0+kcb]
			s2 := a[(ib+r+2)*lda+p0 : (ib+r+2)*lda+p0+kcb]
			s3 := a[(ib+r+3)*lda+p0 : (ib+r+3)*lda+p0+kcb]
			dd := d[r:]
			for l := range kcb {
				dl := dd[l*mr : l*mr+4 : l*mr+4]
				dl[0] = alpha * s0[l]
				dl[1] = alpha * s1[l]
				dl[2] = alpha * s2[l]
				dl[3] = alpha * s3[l]
			}
		}
		for ; r < rows; r++ {
			src := a[(ib+r)*lda+p0 : (ib+r)*lda+p0+kcb]
			for l, v := range src {
				d[l*mr+r] = alpha * v
			}
		}
	}
}

// packB packs op(B)[p0:p0+kcb, j0:j0+ncb] into panels of nr columns,
// zero-padding the last panel: panel q, step l, column c is at
// q*nr*kcb+l*nr+c.
func packB[T float](dst, b []T, ldb int, trans bool, p0, kcb, j0, ncb, nr int) {
	for q := 0; q*nr < ncb; q++ {
		cols := min(nr, ncb-q*nr)
		d := dst[q*nr*kcb : (q+1)*nr*kcb]
		jb := j0 + q*nr
		if !trans { // op(B)(l,j) = b[l*ldb+j]: contiguous in j.
			for l := range kcb {
				src := b[(p0+l)*ldb+jb : (p0+l)*ldb+jb+cols]
				dl := d[l*nr : l*nr+nr]
				copy(dl, src)
				clear(dl[cols:])
			}
			continue
		}
		// op(B)(l,j) = b[j*ldb+l]: row j of b is column j of op(B).
		if cols < nr {
			clear(d)
		}
		cc := 0
		if d32, ok := any(d).([]float32); ok && transpose8 != nil && kcb >= 8 {
			// 8×8 SIMD transposes for the first kcb/8*8 steps of every
			// 8 columns, then Go for the remaining steps.
			b32 := any(b).([]float32)
			k8 := kcb / 8
			for ; cc+8 <= cols; cc += 8 {
				_ = b32[(jb+cc+7)*ldb+p0+k8*8-1] // every row read is in bounds
				_ = d32[(k8*8-1)*nr+cc+7]
				transpose8(&b32[(jb+cc)*ldb+p0], ldb, &d32[cc], nr, k8)
				for r := range 8 {
					src := b[(jb+cc+r)*ldb+p0+k8*8 : (jb+cc+r)*ldb+p0+kcb]
					for l, v := range src {
						d[(k8*8+l)*nr+cc+r] = v
					}
				}
			}
		}
		for ; cc+4 <= cols; cc += 4 {
			s0 := b[(jb+cc+0)*ldb+p0 : (jb+cc+0)*ldb+p0+kcb]
			s1 := b[(jb+cc+1)*ldb+p0 : (jb+cc+1)*ldb+p0+kcb]
			s2 := b[(jb+cc+2)*ldb+p0 : (jb+cc+2)*ldb+p0+kcb]
			s3 := b[(jb+cc+3)*ldb+p0 : (jb+cc+3)*ldb+p0+kcb]
			dd := d[cc:]
			for l := range kcb {
				dl := dd[l*nr : l*nr+4 : l*nr+4]
				dl[0] = s0[l]
				dl[1] = s1[l]
				dl[2] = s2[l]
				dl[3] = s3[l]
			}
		}
		for ; cc < cols; cc++ {
			src := b[(jb+cc)*ldb+p0 : (jb+cc)*ldb+p0+kcb]
			for l, v := range src {
				d[l*nr+cc] = v
			}
		}
	}
}

// bestKernels returns the fastest float32 and float64 micro-kernels this CPU
// runs.
func bestKernels() (microKernel[float32], microKernel[float64]) {
	return microKernels32()[0], microKernels64()[0]
}

// scale sets C = beta·C without reading C when beta is 0.
func scale[T float](m, n int, beta T, c []T, ldc int) {
	for i := range m {
		row := c[i*ldc : i*ldc+n]
		switch beta {
		case 0:
			clear(row)
		case 1:
		default:
			for j := range row {
				row[j] *= beta
			}
		}
	}
}

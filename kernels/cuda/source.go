package cuda

// kernelSource is compiled at run time with NVRTC for the device's compute
// capability. Every kernel that works on rows runs one 256-thread block per
// row; block sums are fixed-order tree reductions (warp shuffles, then the
// warps' partials), so results are deterministic for a given launch.
//
// PCG kernels follow stages/solve's batched Jacobi-PCG exactly (the per-row
// vectors x, r, p and all scalars are float64; only the product H·p is a
// float32 GEMM): act[k] is the chunk-local row of GEMM row k, mask[i*in+j] is
// 1 where input j of row i is pruned, status is 0 active, 1 converged,
// 3 broken down (pᵀHp ≤ 0 or not finite).
const kernelSource = `
#define NT 256
__device__ double block_sum(double v, double* sh) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
    int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
    __syncthreads();
    if (lane == 0) sh[w] = v;
    __syncthreads();
    if (w == 0) {
        v = lane < (int)(blockDim.x >> 5) ? sh[lane] : 0.0;
        for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
        if (lane == 0) sh[32] = v;
    }
    __syncthreads();
    return sh[32];
}

// a[k,:] = w[act[k],:] on the pruned set, 0 elsewhere (float32).
extern "C" __global__ void gather_rhs(const int* act, int in, const float* w, const unsigned char* mask, float* a) {
    long long i = act[blockIdx.x];
    const float* wi = w + i * in;
    const unsigned char* mi = mask + i * in;
    float* ak = a + (long long)blockIdx.x * in;
    for (int j = threadIdx.x; j < in; j += blockDim.x) ak[j] = mi[j] ? wi[j] : 0.0f;
}

// a[k,:] = float32(p[act[k],:]).
extern "C" __global__ void gather_p(const int* act, int in, const double* p, float* a) {
    long long i = act[blockIdx.x];
    const double* pi = p + i * in;
    float* ak = a + (long long)blockIdx.x * in;
    for (int j = threadIdx.x; j < in; j += blockDim.x) ak[j] = (float)pi[j];
}

// r = b = q[k] on S, p = M^-1 r, rz = r.z, bnorm = |b|; status 1 when b = 0.
extern "C" __global__ void pcg_init(const int* act, int in, const float* q, const unsigned char* mask, const double* invD,
        double* r, double* p, double* rz, double* bnorm, unsigned char* status) {
    __shared__ double sh[33];
    long long i = act[blockIdx.x];
    const float* qk = q + (long long)blockIdx.x * in;
    const unsigned char* mi = mask + i * in;
    double* ri = r + i * in;
    double* pi = p + i * in;
    double bb = 0, rzs = 0;
    for (int j = threadIdx.x; j < in; j += blockDim.x) {
        double b = 0, z = 0;
        if (!mi[j]) { b = (double)qk[j]; z = b * invD[j]; }
        ri[j] = b; pi[j] = z;
        bb += b * b; rzs += b * z;
    }
    bb = block_sum(bb, sh);
    rzs = block_sum(rzs, sh);
    if (threadIdx.x == 0) {
        bnorm[i] = sqrt(bb);
        rz[i] = rzs;
        status[i] = bb == 0.0 ? 1 : 0;
    }
}

// One PCG iteration for row act[k] with q[k] = H p.
extern "C" __global__ void pcg_step(const int* act, int in, int it, const float* q, const unsigned char* mask, const double* invD,
        double* x, double* r, double* p, double* rz, const double* bnorm, double tol, int* iters, unsigned char* status) {
    __shared__ double sh[33];
    long long i = act[blockIdx.x];
    const float* qk = q + (long long)blockIdx.x * in;
    const unsigned char* mi = mask + i * in;
    double* xi = x + i * in;
    double* ri = r + i * in;
    double* pi = p + i * in;
    double pq = 0;
    for (int j = threadIdx.x; j < in; j += blockDim.x)
        if (!mi[j]) pq += pi[j] * (double)qk[j];
    pq = block_sum(pq, sh);
    if (threadIdx.x == 0) iters[i] = it;
    if (!(pq > 0) || isinf(pq)) {
        if (threadIdx.x == 0) status[i] = 3;
        return;
    }
    double alpha = rz[i] / pq;
    double rr = 0;
    for (int j = threadIdx.x; j < in; j += blockDim.x) {
        if (mi[j]) continue;
        xi[j] += alpha * pi[j];
        double rj = ri[j] - alpha * (double)qk[j];
        ri[j] = rj;
        rr += rj * rj;
    }
    rr = block_sum(rr, sh);
    if (sqrt(rr) <= tol * bnorm[i]) {
        if (threadIdx.x == 0) status[i] = 1;
        return;
    }
    double rzn = 0;
    for (int j = threadIdx.x; j < in; j += blockDim.x)
        if (!mi[j]) rzn += ri[j] * (ri[j] * invD[j]);
    rzn = block_sum(rzn, sh);
    double beta = rzn / rz[i];
    __syncthreads();
    if (threadIdx.x == 0) rz[i] = rzn;
    for (int j = threadIdx.x; j < in; j += blockDim.x)
        if (!mi[j]) pi[j] = ri[j] * invD[j] + beta * pi[j];
}

// out[i,:] = float32(w + x) on the kept set, 0 on the pruned set; rows whose
// status is 0 (still active at maxIter), 2 or 3 keep w when keepFailed.
extern "C" __global__ void finish_w(int in, int keepFailed, const unsigned char* status, const unsigned char* mask,
        const float* w, const double* x, float* out) {
    long long o = (long long)blockIdx.x * in;
    unsigned char s = status[blockIdx.x];
    bool keep = keepFailed && (s == 0 || s == 2 || s == 3);
    for (int j = threadIdx.x; j < in; j += blockDim.x)
        out[o + j] = keep ? w[o + j] : (mask[o + j] ? 0.0f : (float)((double)w[o + j] + x[o + j]));
}

// v[i,:] (float64) = w0 (mode 0), -w0 on the pruned set (mode 1) or
// w1 - w0 (mode 2), for row i = blockIdx.x.
extern "C" __global__ void build_v(int mode, int in, const float* w0, const float* w1, const unsigned char* mask, double* v) {
    long long o = (long long)blockIdx.x * in;
    for (int j = threadIdx.x; j < in; j += blockDim.x) {
        double a = (double)w0[o + j], r;
        if (mode == 0) r = a;
        else if (mode == 1) r = mask[o + j] ? -a : 0.0;
        else r = (double)w1[o + j] - a;
        v[o + j] = r;
    }
}

// out[6i+off] = sum_j v[i,j] q[i,j], out[6i+off+1] = sum_j v[i,j]^2.
extern "C" __global__ void row_dot2(int in, const double* v, const double* q, double* out, int off) {
    __shared__ double sh[33];
    long long o = (long long)blockIdx.x * in;
    double s = 0, n = 0;
    for (int j = threadIdx.x; j < in; j += blockDim.x) { double a = v[o + j]; s += a * q[o + j]; n += a * a; }
    s = block_sum(s, sh);
    n = block_sum(n, sh);
    if (threadIdx.x == 0) { out[6 * (long long)blockIdx.x + off] = s; out[6 * (long long)blockIdx.x + off + 1] = n; }
}

// h[i,j] += g[lo + hi*in] with lo = min(i,j), hi = max(i,j): adds the float32
// Gram block (column-major from cuBLAS) to the float64 sum, symmetrically.
extern "C" __global__ void gram_add(int in, const float* g, double* h) {
    long long n = (long long)in * in;
    for (long long e = (long long)blockIdx.x * blockDim.x + threadIdx.x; e < n; e += (long long)gridDim.x * blockDim.x) {
        long long i = e / in, j = e % in;
        long long lo = i < j ? i : j, hi = i < j ? j : i;
        h[e] += (double)g[lo + hi * in];
    }
}

// a[k][r][c] = h[kept[k][r]][kept[k][c]] for c in [0, n): row r of matrix
// k = blockIdx.x / n (r = blockIdx.x % n), H_SS gathered from the float64
// Hessian h [in, in] (both triangles) into the n x n row-major block at
// a + k*n*n; kept is [batch, n] int32.
extern "C" __global__ void gather_hss(int in, int n, const int* kept, const double* h, double* a) {
    long long kr = blockIdx.x;
    long long k = kr / n;
    const int* kk = kept + k * n;
    const double* hr = h + (long long)kk[kr - k * n] * in;
    double* ar = a + kr * n;
    for (int c = threadIdx.x; c < n; c += blockDim.x) ar[c] = hr[kk[c]];
}
`

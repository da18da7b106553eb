package cuda

// SetMaxBatchBytes sets the device memory cap of one batched-Cholesky chunk
// (for tests of the chunking) and returns a function restoring the old one.
func SetMaxBatchBytes(n int64) (restore func()) {
	old := maxBatchBytes.Swap(n)
	return func() { maxBatchBytes.Store(old) }
}

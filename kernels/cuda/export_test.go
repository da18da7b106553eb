package cuda

// SetMaxBatchBytes sets the device memory cap of one batched-Cholesky chunk
// (for tests of the chunking) and returns a function restoring the old one.
func SetMaxBatchBytes(n int64) (restore func()) {
	old := maxBatchBytes.Swap(n)
	return func() { maxBatchBytes.Store(old) }
}

// SetStaging sets the pinned staging piece size and the smallest staged
// copy (bytes; for tests of copies in several pieces) and returns a
// function restoring the old ones.
func SetStaging(piece, minBytes int64) (restore func()) {
	op, om := stagePiece.Swap(piece), stageMin.Swap(minBytes)
	return func() { stagePiece.Store(op); stageMin.Store(om) }
}

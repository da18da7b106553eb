// Package pipeline assembles optima's Beam graph from the transforms of
// package transforms. It owns no algorithm: Build lays out
//
//	windows ─ Embed ─▶ shards(0)
//	for each block b (sequential sections of one graph):
//	    LoadBlock(b) ──────────────────────────────┐ RowBatch
//	    shards(b) ─ Calibrate(b) ─ AccumulateHessian ─▶ Hessians (side input)
//	                                   SelectMask ─ SolveRowQPs ─ WriteBlock(b)
//	    shards(b) ─ Propagate(b) [pruned block b as side input] ─▶ shards(b+1)
//	    WriteBlock(b) ─ MarkDone(b) [shards(b+1) as side input]
//	all MarkDone ─▶ Write (the Hugging Face model directory and report.json)
//
// so that each block is calibrated on the outputs of the already pruned
// block before it (DESIGN.md §2), and an interrupted run resumes after the
// last block whose done marker exists in the work directory and whose files
// pass Prepare's checks (headers, sizes, and the SHA-256 the marker records
// for each file the block wrote; see resumable).
package pipeline

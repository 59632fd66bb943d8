# The dispatch journal on S3 (included by the Makefile).
#
#   bench-journal-s3  bench/journal_s3_bench.py: appends per second for one writer and for 16
#                     concurrent writer processes, on the sandbox's S3 and (the reference) the
#                     local journal file, measured in the same run; `make bench` records it
#                     in BENCHMARKS.md

.PHONY: bench-journal-s3

BENCH_TARGETS += bench-journal-s3

bench-journal-s3: $(STAMP)
	$(BIN)/python bench/journal_s3_bench.py --runs 3

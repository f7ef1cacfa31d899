# stackprobe. `make run` writes a result folder to ./out; `make test` is what CI runs.
GO      ?= go
BIN     := bin/stackprobe
OUT     ?= out
RUNARGS ?= --stack=100MB --depth=4KiB,64KiB,1MiB --tasks=50 --messages=2000
FUZZTIME ?= 10s
# make bench [BENCH=regexp] [PKG=./procread] [COUNT=10] [BENCHTIME=3x]: the raw results go
# to bench/new.txt and benchstat summarises them (median ± spread); with
# bench/old.txt present it compares the two.
BENCH   ?= .
PKG     ?= ./...
COUNT   ?= 10
BENCHTIME ?= 1s

.PHONY: all build run test bench fuzz lint clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/stackprobe

run: build
	./$(BIN) $(RUNARGS) --out=$(OUT) --force

test:
	$(GO) vet ./...
	$(GO) test -race ./...

bench:
	@mkdir -p bench
	$(GO) test -run='^$$' -bench='$(BENCH)' -benchtime=$(BENCHTIME) -benchmem -count=$(COUNT) $(PKG) | tee bench/new.txt
	@if [ -f bench/old.txt ]; then $(GO) tool benchstat bench/old.txt bench/new.txt; else $(GO) tool benchstat bench/new.txt; fi

fuzz:
	$(GO) test -run='^$$' -fuzz=FuzzParse$$ -fuzztime=$(FUZZTIME) ./sizes
	$(GO) test -run='^$$' -fuzz=FuzzParseList -fuzztime=$(FUZZTIME) ./sizes
	$(GO) test -run='^$$' -fuzz=FuzzParseSmaps -fuzztime=$(FUZZTIME) ./procread

lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet ./...

clean:
	rm -rf bin bench $(OUT)

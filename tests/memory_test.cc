// Tests for the memory tier: AlignedBuffer, DirectReader (every engine, aligned and unaligned
// reads checked byte for byte against the data written, truncated and deleted files) and the
// bandwidth probes (only that they run and return sane numbers: no timing thresholds).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <random>
#include <thread>
#include <vector>

#include "core/error.h"
#include "core/thread_pool.h"
#include "memory/aligned_buffer.h"
#include "memory/bandwidth.h"
#include "memory/direct_reader.h"

namespace strata {
namespace {

namespace fs = std::filesystem;
constexpr long kTmpfsMagic = 0x01021994;

// A scratch directory on a real disk when there is one: O_DIRECT on tmpfs proves little. It is
// removed at exit.
struct ScratchCleanup {
  std::string dir;
  ~ScratchCleanup() {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
};

std::string scratch_dir() {
  static const std::string dir = [] {
    std::vector<std::string> bases = {"/var/tmp", "/tmp", fs::current_path().string()};
    if (const char* t = std::getenv("TMPDIR"); t && *t) bases.insert(bases.begin(), t);
    std::string pick;
    for (const auto& b : bases) {
      struct statfs s {};
      if (statfs(b.c_str(), &s) != 0 || access(b.c_str(), W_OK) != 0) continue;
      if (pick.empty()) pick = b;  // fallback: first writable one, even if tmpfs
      if (long(s.f_type) != kTmpfsMagic) {
        pick = b;
        break;
      }
    }
    if (pick.empty()) pick = ".";
    std::string tmpl = pick + "/strata-memtest-XXXXXX";
    if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed in " + pick);
    return tmpl;
  }();
  static ScratchCleanup cleanup{dir};
  return dir;
}

// Deterministic pseudo-random bytes (splitmix64), the reference every read is compared with.
std::vector<uint8_t> make_bytes(size_t n, uint64_t seed) {
  std::vector<uint8_t> v(n);
  uint64_t x = seed;
  for (size_t i = 0; i < n; i += 8) {
    uint64_t z = (x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    std::memcpy(v.data() + i, &z, std::min<size_t>(8, n - i));
  }
  return v;
}

void write_file(const std::string& path, const std::vector<uint8_t>& data) {
  FILE* f = std::fopen(path.c_str(), "wb");
  ASSERT_NE(f, nullptr) << path;
  ASSERT_EQ(std::fwrite(data.data(), 1, data.size(), f), data.size());
  ASSERT_EQ(std::fclose(f), 0);
}

// ---------------------------------------------------------------------------------------------
TEST(AlignedBuffer, AlignmentSizeAndAccounting) {
  const uint64_t base = AlignedBuffer::live_bytes();
  for (size_t n : {size_t(1), size_t(4095), size_t(4096), size_t(5000), size_t(3) << 20}) {
    AlignedBuffer b(n);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(b.data()) % AlignedBuffer::kAlignment, 0u) << n;
    EXPECT_EQ(b.size(), n);
    EXPECT_EQ(b.capacity(), (n + 4095) / 4096 * 4096);
    EXPECT_EQ(AlignedBuffer::live_bytes(), base + b.capacity());
    std::memset(b.data(), 0x5A, b.size());  // the whole size is writable
    EXPECT_EQ(b.data()[n - 1], 0x5A);
  }
  EXPECT_EQ(AlignedBuffer::live_bytes(), base);
  EXPECT_GE(AlignedBuffer::peak_live_bytes(), base + (size_t(3) << 20));
}

TEST(AlignedBuffer, MoveResizeReset) {
  const uint64_t base = AlignedBuffer::live_bytes();
  AlignedBuffer a(10000);
  uint8_t* p = a.data();
  AlignedBuffer b(std::move(a));
  EXPECT_EQ(b.data(), p);
  EXPECT_EQ(a.data(), nullptr);
  EXPECT_EQ(a.size(), 0u);
  EXPECT_EQ(AlignedBuffer::live_bytes(), base + 12288);
  AlignedBuffer c(100);
  c = std::move(b);  // c's old 4 KiB is freed
  EXPECT_EQ(c.data(), p);
  EXPECT_EQ(AlignedBuffer::live_bytes(), base + 12288);
  c.resize(9000);  // same capacity: keeps the memory
  EXPECT_EQ(c.data(), p);
  EXPECT_EQ(c.size(), 9000u);
  c.resize(size_t(2) << 20);
  EXPECT_EQ(c.size(), size_t(2) << 20);
  // Big buffers start on a 2 MiB boundary so they can be backed by huge pages.
  EXPECT_EQ(reinterpret_cast<uintptr_t>(c.data()) % (size_t(2) << 20), 0u);
  EXPECT_EQ(AlignedBuffer::live_bytes(), base + (size_t(2) << 20));
  c.resize(0);
  EXPECT_TRUE(c.empty());
  EXPECT_EQ(AlignedBuffer::live_bytes(), base);
}

TEST(AlignedBuffer, LockIsOptional) {
  AlignedBuffer b(64 << 10);
  const bool ok = b.lock();  // may be refused by RLIMIT_MEMLOCK: either way the buffer works
  EXPECT_EQ(b.locked(), ok);
  std::memset(b.data(), 1, b.size());
  b.unlock();
  EXPECT_FALSE(b.locked());
  AlignedBuffer empty;
  EXPECT_FALSE(empty.lock());
}

// fault_in touches every page from several threads and must leave the contents as they were:
// untouched pages (zero when mapped, uninitialised when small) and written ones alike, in a
// 2 MiB-aligned buffer of huge pages and in a small one; an empty buffer is a no-op.
TEST(AlignedBuffer, FaultInKeepsTheContents) {
  for (size_t size : {size_t(5) << 20, size_t(10000)}) {
    AlignedBuffer fresh(size), written(size);
    for (size_t i = 0; i < size; ++i) written.data()[i] = static_cast<uint8_t>(i * 7 + 1);
    const std::vector<uint8_t> before(fresh.data(), fresh.data() + size);
    fresh.fault_in();
    written.fault_in();
    EXPECT_EQ(std::memcmp(fresh.data(), before.data(), size), 0) << size;
    for (size_t i = 0; i < size; ++i)
      ASSERT_EQ(written.data()[i], static_cast<uint8_t>(i * 7 + 1)) << size << " " << i;
  }
  AlignedBuffer empty;
  empty.fault_in();
}

// ---------------------------------------------------------------------------------------------
constexpr size_t kFileSize = (size_t(24) << 20) + 1234;  // ends mid-block

class ReaderTest : public ::testing::TestWithParam<DirectReader::Mode> {
 protected:
  static void SetUpTestSuite() {
    data_ = new std::vector<uint8_t>(make_bytes(kFileSize, 42));
    path_ = new std::string(scratch_dir() + "/data.bin");
    write_file(*path_, *data_);
  }
  static void TearDownTestSuite() {
    std::remove(path_->c_str());
    delete data_;
    delete path_;
  }
  DirectReader::Mode mode() const { return GetParam(); }
  static const std::vector<uint8_t>& data() { return *data_; }
  static const std::string& path() { return *path_; }

  // Reads [off, off+len) into a destination `mis` bytes past a page boundary, with sentinel
  // bytes around it, and checks the bytes and that nothing outside the range was touched.
  static void check_read(DirectReader& r, uint64_t off, uint64_t len, size_t mis) {
    const size_t pad = 8192;
    AlignedBuffer buf(pad + mis + len + pad);
    std::memset(buf.data(), 0xCD, buf.size());
    uint8_t* dst = buf.data() + pad + mis;
    r.wait(r.submit(off, len, dst));
    ASSERT_EQ(std::memcmp(dst, data().data() + off, len), 0)
        << "off " << off << " len " << len << " mis " << mis << " mode " << r.mode_name();
    for (size_t i = 0; i < pad + mis; ++i) ASSERT_EQ(buf.data()[i], 0xCD) << "underrun " << i;
    for (size_t i = pad + mis + len; i < buf.size(); ++i)
      ASSERT_EQ(buf.data()[i], 0xCD) << "overrun";
  }

  static std::vector<uint8_t>* data_;
  static std::string* path_;
};
std::vector<uint8_t>* ReaderTest::data_ = nullptr;
std::string* ReaderTest::path_ = nullptr;

TEST_P(ReaderTest, ModeName) {
  DirectReader r(path(), 8, 4 << 20, mode());
  const std::string m = r.mode_name();
  std::printf("[ mode     ] %s on %s\n", m.c_str(), scratch_dir().c_str());
  EXPECT_EQ(r.file_size(), kFileSize);
  if (mode() == DirectReader::Mode::kBuffered) {
    EXPECT_EQ(m, "buffered");
  } else if (mode() == DirectReader::Mode::kPread) {
    EXPECT_TRUE(m == "pread+O_DIRECT" || m == "buffered") << m;
  } else {
    EXPECT_TRUE(m == "io_uring+O_DIRECT" || m == "pread+O_DIRECT" || m == "buffered") << m;
  }
  EXPECT_EQ(r.direct(), m != "buffered");
}

TEST_P(ReaderTest, AlignedReadIsZeroCopy) {
  DirectReader r(path(), 4, 1 << 20, mode());
  const size_t n = kFileSize / 4096 * 4096;
  AlignedBuffer buf(n);
  r.wait(r.submit(0, n, buf.data()));
  EXPECT_EQ(std::memcmp(buf.data(), data().data(), n), 0);
  EXPECT_EQ(r.bytes_read(), n);
  EXPECT_EQ(r.bytes_staged(), 0u);
}

TEST_P(ReaderTest, UnalignedOffsetsLengthsAndDestinations) {
  // Small chunks so multi-chunk requests and staged pieces are all exercised.
  DirectReader r(path(), 4, 64 << 10, mode());
  const uint64_t offs[] = {0, 1, 511, 4095, 4096, 4097, 65536 - 7, 1000003};
  const uint64_t lens[] = {1, 100, 4095, 4096, 4097, 65536, 65536 * 3 + 17, (1 << 20) + 5};
  const size_t mises[] = {0, 1, 3, 4095};
  for (uint64_t off : offs)
    for (uint64_t len : lens)
      for (size_t mis : mises) check_read(r, off, len, mis);
  EXPECT_GT(r.bytes_read(), 0u);
}

TEST_P(ReaderTest, ReadsUpToTheUnalignedEnd) {
  DirectReader r(path(), 4, 64 << 10, mode());
  check_read(r, kFileSize - 1, 1, 0);
  check_read(r, kFileSize - 1234, 1234, 0);
  check_read(r, kFileSize - 5000, 5000, 7);
  check_read(r, kFileSize - 300000, 300000, 300000 % 4096);  // same skew as the offset
  check_read(r, 0, kFileSize, 0);
  check_read(r, 0, kFileSize, 5);
}

TEST_P(ReaderTest, SameSkewStagesOnlyHeadAndTail) {
  DirectReader r(path(), 4, 256 << 10, mode());
  const uint64_t off = 3 * 4096 + 100, len = (3 << 20) + 50;
  check_read(r, off, len, 100);  // dst is 100 bytes past a page, like the offset
  if (r.direct()) {
    EXPECT_LT(r.bytes_staged(), 8192u);
  } else {
    EXPECT_EQ(r.bytes_staged(), 0u);
  }
}

TEST_P(ReaderTest, ManyReadsInFlight) {
  DirectReader r(path(), 8, 128 << 10, mode());
  std::mt19937_64 rng(7);
  struct Req {
    uint64_t off, len;
    size_t at;
    uint64_t ticket;
  };
  std::vector<Req> reqs;
  size_t total = 0;
  for (int i = 0; i < 300; ++i) {
    const uint64_t len = 1 + rng() % (300 << 10);
    const uint64_t off = rng() % (kFileSize - len + 1);
    const size_t at = total + (i % 3 == 0 ? 0 : rng() % 4096);
    reqs.push_back({off, len, at, 0});
    total = (at + len + 4095) / 4096 * 4096;
  }
  AlignedBuffer buf(total);
  for (auto& q : reqs) q.ticket = r.submit(q.off, q.len, buf.data() + q.at);
  // Wait for half of them out of order, the rest all at once.
  std::vector<size_t> order(reqs.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::shuffle(order.begin(), order.end(), rng);
  for (size_t i = 0; i < order.size() / 2; ++i) r.wait(reqs[order[i]].ticket);
  r.wait_all();
  for (const auto& q : reqs)
    ASSERT_EQ(std::memcmp(buf.data() + q.at, data().data() + q.off, q.len), 0) << q.off;
  for (const auto& q : reqs) EXPECT_TRUE(r.done(q.ticket));
  r.wait(reqs[0].ticket);  // waiting again for a finished ticket is fine
}

TEST_P(ReaderTest, ProgressesWithoutWait) {
  // Far more chunks than the queue depth: the reader must keep refilling its queue while the
  // caller is busy elsewhere, not only inside wait().
  DirectReader r(path(), 2, 64 << 10, mode());
  const size_t n = 16 << 20;
  AlignedBuffer buf(n);
  const uint64_t t = r.submit(0, n, buf.data());
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (r.bytes_read() < n && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  EXPECT_EQ(r.bytes_read(), n);
  EXPECT_TRUE(r.done(t));
  r.wait(t);
  EXPECT_EQ(std::memcmp(buf.data(), data().data(), n), 0);
}

TEST_P(ReaderTest, EmptyReadAndBadTicket) {
  DirectReader r(path(), 2, 64 << 10, mode());
  const uint64_t t = r.submit(kFileSize, 0, nullptr);
  EXPECT_TRUE(r.done(t));
  r.wait(t);
  EXPECT_THROW(r.wait(t + 1000), Error);
}

TEST_P(ReaderTest, ReadPastEndIsAnError) {
  DirectReader r(path(), 2, 64 << 10, mode());
  std::vector<uint8_t> buf(100);
  try {
    r.submit(kFileSize - 10, 20, buf.data());
    FAIL() << "no error";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(path()), std::string::npos) << msg;
    EXPECT_NE(msg.find("past the end"), std::string::npos) << msg;
  }
}

TEST_P(ReaderTest, DestroyWithReadsInFlight) {
  AlignedBuffer buf(kFileSize);  // outlives the reader, which must drain before returning
  {
    DirectReader r(path(), 4, 64 << 10, mode());
    for (int i = 0; i < 4; ++i) r.submit(0, 4 << 20, buf.data() + i * (4 << 20) + 3);
  }
  SUCCEED();
}

INSTANTIATE_TEST_SUITE_P(Modes, ReaderTest,
                         ::testing::Values(DirectReader::Mode::kAuto, DirectReader::Mode::kPread,
                                           DirectReader::Mode::kBuffered),
                         [](const auto& info) {
                           switch (info.param) {
                             case DirectReader::Mode::kAuto:
                               return std::string("Auto");
                             case DirectReader::Mode::kPread:
                               return std::string("Pread");
                             default:
                               return std::string("Buffered");
                           }
                         });

// ---------------------------------------------------------------------------------------------
class ReaderFileChanges : public ::testing::TestWithParam<DirectReader::Mode> {};

TEST_P(ReaderFileChanges, TruncatedFileGivesClearError) {
  const std::string p = scratch_dir() + "/trunc.bin";
  const auto bytes = make_bytes(4 << 20, 9);
  write_file(p, bytes);
  DirectReader r(p, 4, 256 << 10, GetParam());
  ASSERT_EQ(truncate(p.c_str(), (1 << 20) + 100), 0);  // someone shrinks the file under us
  AlignedBuffer buf(2 << 20);
  auto expect_missing = [&](uint64_t off, uint64_t len, uint8_t* dst, uint64_t missing) {
    try {
      r.wait(r.submit(off, len, dst));
      FAIL() << "no error reading [" << off << ", " << off + len << ")";
    } catch (const Error& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find(p), std::string::npos) << msg;
      EXPECT_NE(msg.find(fmt::format("{} bytes missing", missing)), std::string::npos) << msg;
      EXPECT_NE(msg.find(fmt::format("[{}, {})", off, off + len)), std::string::npos) << msg;
    }
  };
  expect_missing(2 << 20, 1 << 20, buf.data(), 1 << 20);            // wholly past the new end
  expect_missing(1 << 20, 4096, buf.data(), 4096 - 100);            // straddles it, aligned
  expect_missing((1 << 20) - 5, 2000, buf.data() + 1, 2000 - 105);  // straddles it, staged
  // What is still there reads fine, and the reader keeps working after errors.
  r.wait(r.submit(0, (1 << 20) + 100, buf.data() + 3));
  EXPECT_EQ(std::memcmp(buf.data() + 3, bytes.data(), (1 << 20) + 100), 0);
  // Failed tickets left for wait_all surface there, once.
  r.submit(3 << 20, 4096, buf.data());
  r.submit(2 << 20, 4096, buf.data() + 4096);
  EXPECT_THROW(r.wait_all(), Error);
  r.wait_all();
  std::remove(p.c_str());
}

TEST_P(ReaderFileChanges, DeletedFileStillReadsThroughOpenHandle) {
  const std::string p = scratch_dir() + "/deleted.bin";
  const auto bytes = make_bytes(2 << 20, 11);
  write_file(p, bytes);
  DirectReader r(p, 4, 256 << 10, GetParam());
  ASSERT_EQ(std::remove(p.c_str()), 0);
  AlignedBuffer buf(2 << 20);
  r.wait(r.submit(0, 2 << 20, buf.data()));
  EXPECT_EQ(std::memcmp(buf.data(), bytes.data(), 2 << 20), 0);
}

INSTANTIATE_TEST_SUITE_P(Modes, ReaderFileChanges,
                         ::testing::Values(DirectReader::Mode::kAuto, DirectReader::Mode::kPread,
                                           DirectReader::Mode::kBuffered));

TEST(DirectReader, OpenErrorsNameThePath) {
  const std::string missing = scratch_dir() + "/no-such-file.bin";
  try {
    DirectReader r(missing);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(missing), std::string::npos) << e.what();
  }
  try {
    DirectReader r(scratch_dir());
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("not a regular file"), std::string::npos) << e.what();
  }
}

// ---------------------------------------------------------------------------------------------
TEST(Bandwidth, MemoryReadIsPositive) {
  ThreadPool pool(2);
  const double all = measure_memory_read_bandwidth(pool, 64 << 20, 3);
  const double one = measure_memory_read_bandwidth(pool, 64 << 20, 3, 1);
  std::printf("[ memory   ] %.1f GB/s with %d threads, %.1f GB/s with 1 (64 MiB)\n", all,
              pool.size(), one);
  EXPECT_TRUE(std::isfinite(all) && all > 0.1 && all < 1e5) << all;
  EXPECT_TRUE(std::isfinite(one) && one > 0.1 && one < 1e5) << one;
}

TEST(Bandwidth, DiskReadWriteArePositiveAndCleanUp) {
  const std::string dir = scratch_dir() + "/disk";
  fs::create_directories(dir);
  const DiskBandwidth bw = measure_disk_bandwidth(dir, 32 << 20);
  const double w = measure_disk_write_bandwidth(dir, 8 << 20);
  const double rd = measure_disk_read_bandwidth(dir, 8 << 20);
  std::printf("[ disk     ] read %.2f GB/s, write %.2f GB/s (32 MiB in %s)\n", bw.read_gbps,
              bw.write_gbps, dir.c_str());
  for (double x : {bw.read_gbps, bw.write_gbps, w, rd}) EXPECT_TRUE(std::isfinite(x) && x > 0) << x;
  EXPECT_TRUE(fs::is_empty(dir)) << "temporary benchmark files left behind in " << dir;
  // An existing file is read in place, not copied.
  const std::string f = dir + "/existing.bin";
  write_file(f, make_bytes(3 << 20, 5));
  const double rf = measure_disk_read_bandwidth(f, 0);
  EXPECT_TRUE(std::isfinite(rf) && rf > 0) << rf;
  EXPECT_THROW(measure_disk_write_bandwidth(dir + "/nope"), Error);
  std::remove(f.c_str());
}

}  // namespace
}  // namespace strata

// GGUF and safetensors readers on real files, and the GGUF writer round trip.
#include <gtest/gtest.h>

#include "core/error.h"
#include "core/file.h"
#include "formats/gguf.h"
#include "formats/gguf_writer.h"
#include "formats/model_files.h"
#include "formats/safetensors.h"
#include "test_support.h"

namespace strata {
namespace {

using test::shared_path;

TEST(Gguf, ReadsStories260K) {
  GgufFile g(shared_path("models/stories260K-gguf/stories260K.gguf"));
  EXPECT_EQ(g.version(), 3u);
  EXPECT_EQ(g.alignment(), 32u);
  EXPECT_EQ(g.data_offset(), 14176u);
  EXPECT_EQ(g.keys().size(), 19u);
  EXPECT_EQ(g.tensors().size(), 48u);
  EXPECT_EQ(g.get_str("general.architecture"), "llama");
  EXPECT_EQ(g.get_int("llama.context_length"), 2048);
  EXPECT_EQ(g.get_int("llama.embedding_length"), 64);
  EXPECT_EQ(g.get_strs("tokenizer.ggml.tokens").size(), 512u);
  EXPECT_EQ(g.get_strs("tokenizer.ggml.tokens")[1], "<s>");
  // Tensor data runs exactly to the end of the file.
  uint64_t end = 0;
  for (const auto& t : g.tensor_infos()) end = std::max(end, t.offset + t.nbytes);
  EXPECT_EQ(end, g.file().size());
  const auto infos = g.tensor_infos();
  const auto it = std::find_if(infos.begin(), infos.end(),
                               [](const TensorInfo& t) { return t.name == "token_embd.weight"; });
  ASSERT_NE(it, infos.end());
  EXPECT_EQ(it->shape, (std::vector<int64_t>{512, 64}));  // outermost first
  EXPECT_EQ(it->dtype, DType::F32);
}

TEST(Gguf, VocabOnlyFilesHaveNoTensors) {
  GgufFile g(shared_path("models/vocab-gguf/ggml-vocab-llama-spm.gguf"));
  EXPECT_EQ(g.tensors().size(), 0u);
  EXPECT_EQ(g.get_strs("tokenizer.ggml.tokens").size(), 32000u);
}

TEST(Gguf, WriterRoundTripsEveryValueType) {
  const std::string path = test::temp_dir() + "/roundtrip.gguf";
  GgufWriter w;
  w.set_u32("a.u32", 4000000000u);
  w.set_i32("a.i32", -7);
  w.set_u64("a.u64", 1ull << 60);
  w.set_f32("a.f32", 0.25f);
  w.set_bool("a.bool", true);
  w.set_str("a.str", "héllo\n");
  w.set_strs("a.strs", {"x", "", "zz"});
  w.set_f32s("a.f32s", {1.5f, -2.0f});
  w.set_i32s("a.i32s", {1, -2, 3});
  for (GgufType t :
       {GgufType::U8, GgufType::I8, GgufType::U16, GgufType::I16, GgufType::I64, GgufType::F64}) {
    GgufValue v;
    v.type = t;
    if (t == GgufType::F64)
      v.f = -3.5;
    else
      v.i = t == GgufType::I8 || t == GgufType::I16 || t == GgufType::I64 ? -5 : 200;
    w.set(std::string("s.") + gguf_type_name(t), v);
  }
  GgufValue nested;
  nested.type = GgufType::ARRAY;
  nested.elem = GgufType::ARRAY;
  GgufValue inner;
  inner.type = GgufType::ARRAY;
  inner.elem = GgufType::U16;
  inner.ints = {1, 2, 65535};
  nested.items = {inner, inner};
  w.set("a.nested", nested);
  std::vector<float> data(3 * 64);
  for (size_t i = 0; i < data.size(); ++i) data[i] = float(i) * 0.5f;
  w.add_tensor("t.f32", DType::F32, {3, 64},
               [&](uint8_t* d, uint64_t n) { std::memcpy(d, data.data(), n); });
  w.add_tensor("t.q8", DType::Q8_0, {2, 32}, [&](uint8_t* d, uint64_t n) { std::memset(d, 7, n); });
  w.write(path, "");

  GgufFile g(path);
  EXPECT_EQ(g.get_int("a.u32"), 4000000000ll);
  EXPECT_EQ(g.get_int("a.i32"), -7);
  EXPECT_EQ(static_cast<uint64_t>(g.get_int("a.u64")), 1ull << 60);
  EXPECT_EQ(g.get_float("a.f32"), 0.25);
  EXPECT_TRUE(g.get_bool("a.bool", false));
  EXPECT_EQ(g.get_str("a.str"), "héllo\n");
  EXPECT_EQ(g.get_strs("a.strs"), (std::vector<std::string>{"x", "", "zz"}));
  EXPECT_EQ(g.at("a.f32s").floats, (std::vector<double>{1.5, -2.0}));
  EXPECT_EQ(g.at("a.i32s").ints, (std::vector<int64_t>{1, -2, 3}));
  EXPECT_EQ(g.get_int("s.i8"), -5);
  EXPECT_EQ(g.get_int("s.u16"), 200);
  EXPECT_EQ(g.get_float("s.f64"), -3.5);
  ASSERT_EQ(g.at("a.nested").items.size(), 2u);
  EXPECT_EQ(g.at("a.nested").items[1].ints, (std::vector<int64_t>{1, 2, 65535}));
  const auto t = g.tensor_infos();
  ASSERT_EQ(t.size(), 2u);
  EXPECT_EQ(t[0].shape, (std::vector<int64_t>{3, 64}));
  EXPECT_EQ(t[1].dtype, DType::Q8_0);
  EXPECT_EQ(t[1].nbytes, 68u);
  EXPECT_EQ(std::memcmp(g.file().data() + t[0].offset, data.data(), t[0].nbytes), 0);
  EXPECT_EQ(t[1].offset % 32, 0u);
}

TEST(Gguf, UnknownTensorTypesAreNamedNotCrashed) {
  const std::string path = test::temp_dir() + "/iq.gguf";
  GgufWriter w;
  w.add_tensor("w", DType::F32, {1, 32}, [](uint8_t* d, uint64_t n) { std::memset(d, 0, n); });
  w.write(path, "");
  // Patch the tensor's type id to IQ2_XS (17): the reader must report it by name.
  std::string bytes = read_text_file(path);
  const size_t at = bytes.find("w") + 1 + 4 + 16;  // name, n_dims, 2 dims
  uint32_t iq = 17;
  std::memcpy(&bytes[at], &iq, 4);
  AtomicFile f(path);
  f.write(bytes);
  f.commit();
  GgufFile g(path);
  ASSERT_EQ(g.tensors().size(), 1u);
  EXPECT_FALSE(g.tensors()[0].dtype.has_value());
  try {
    g.tensor_infos();
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("IQ2_XS"), std::string::npos) << e.what();
  }
}

TEST(Safetensors, ReadsTinyOptAndShardedIndex) {
  auto set = read_safetensors_dir(shared_path("models/tiny/opt"));
  EXPECT_EQ(set.tensors.size(), 36u);
  for (const auto& t : set.tensors) EXPECT_EQ(t.dtype, DType::F16) << t.name;
  // A sharded copy: two files and an index.json.
  const std::string dir = test::temp_dir() + "/sharded";
  ASSERT_EQ(std::system(("mkdir -p " + dir).c_str()), 0);
  const auto one = read_safetensors(shared_path("models/tiny/opt/model.safetensors"), 0);
  nlohmann::json h0, h1, index;
  std::string d0, d1;
  const uint8_t* base = one.file->data();
  for (size_t i = 0; i < one.tensors.size(); ++i) {
    const auto& t = one.tensors[i];
    auto& h = i % 2 ? h1 : h0;
    auto& d = i % 2 ? d1 : d0;
    h[t.name] = {
        {"dtype", "F16"}, {"shape", t.shape}, {"data_offsets", {d.size(), d.size() + t.nbytes}}};
    d.append(reinterpret_cast<const char*>(base + t.offset), t.nbytes);
    index["weight_map"][t.name] =
        i % 2 ? "model-00002-of-00002.safetensors" : "model-00001-of-00002.safetensors";
  }
  auto write = [](const std::string& p, const nlohmann::json& h, const std::string& d) {
    const std::string hs = h.dump();
    const uint64_t n = hs.size();
    AtomicFile f(p);
    f.write(&n, 8);
    f.write(hs);
    f.write(d);
    f.commit();
  };
  write(dir + "/model-00001-of-00002.safetensors", h0, d0);
  write(dir + "/model-00002-of-00002.safetensors", h1, d1);
  AtomicFile idx(dir + "/model.safetensors.index.json");
  idx.write(index.dump());
  idx.commit();
  auto sharded = read_safetensors_dir(dir);
  EXPECT_EQ(sharded.files.size(), 2u);
  EXPECT_EQ(sharded.tensors.size(), 36u);
}

TEST(ModelFiles, ClearErrors) {
  auto msg = [](const std::string& p) {
    try {
      open_model_files(p);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(msg("/nonexistent/model.gguf").find("not found"), std::string::npos);
  EXPECT_NE(msg(shared_path("models/tiny/opt/vocab.json")).find("not a GGUF"), std::string::npos);
  EXPECT_NE(msg(shared_path("models/vocab-gguf")).find("config.json"), std::string::npos);
}

}  // namespace
}  // namespace strata

// Values derived from a weight and kept while its value lasts: linear.cc's bf16 copies, onednn.cc's packed copies.
// Keyed by the weight's TensorImpl. An entry belongs to the weight while that tensor lives (weak reference) and keeps
// its storage; it is current while the weight's version counter is unchanged (every in-place update bumps it:
// optimizers, copy_, file loads). Entries of weights that are gone are dropped when the map has doubled since the
// last sweep. Not locked: each user holds its own mutex around it.
#pragma once

#include <ATen/ATen.h>

#include <algorithm>
#include <unordered_map>
#include <utility>

namespace reptok {

template <typename V>
class WeightCache {
 public:
  struct Entry {
    c10::weak_intrusive_ptr<c10::TensorImpl> source;
    int64_t version;
    const void* data;
    V value;
    bool current(const at::Tensor& w) const { return version == w._version(); }
  };

  // w's entry, current or not, or null when it has none (or its key now names another tensor or storage)
  Entry* find(const at::Tensor& w) {
    auto it = map_.find(w.unsafeGetTensorImpl());
    if (it == map_.end() || it->second.source.expired() || it->second.data != w.data_ptr()) return nullptr;
    return &it->second;
  }

  // `value` as w's entry at its current version, replacing any other
  Entry& put(const at::Tensor& w, V value) {
    if (map_.size() >= pruneAt_) {
      for (auto e = map_.begin(); e != map_.end();) e = e->second.source.expired() ? map_.erase(e) : std::next(e);
      pruneAt_ = std::max<size_t>(64, 2 * map_.size());
    }
    const c10::TensorImpl* key = w.unsafeGetTensorImpl();
    map_.erase(key);
    return map_.emplace(key, Entry{c10::weak_intrusive_ptr<c10::TensorImpl>(w.getIntrusivePtr()), w._version(), w.data_ptr(), std::move(value)})
        .first->second;
  }

  void erase(const at::Tensor& w) { map_.erase(w.unsafeGetTensorImpl()); }

  // {count, bytes} of the entries whose weight still lives (current or not); bytes(value) sizes one
  template <typename F>
  std::pair<int64_t, int64_t> liveUsage(F&& bytes) const {
    std::pair<int64_t, int64_t> n{0, 0};
    for (const auto& [key, e] : map_) {
      if (e.source.expired()) continue;
      n.first++;
      n.second += bytes(e.value);
    }
    return n;
  }

 private:
  std::unordered_map<const c10::TensorImpl*, Entry> map_;
  size_t pruneAt_ = 64;
};

}  // namespace reptok

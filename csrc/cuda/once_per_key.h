// compute() once per key, under one lock, and its value on every later call: the caches of what a device is and what
// fits on it, read on every call and filled on the first. Each call site (its own lambda type) has its own cache.
// Plain C++: the host glue (ops_cuda.cpp) and the launchers of the .cu files share it.
#pragma once

#include <map>
#include <mutex>

namespace fusedlse {

template <typename Key, typename Compute> auto once_per_key(const Key& key, Compute&& compute) {
  using Value = decltype(compute());
  static std::mutex mutex;
  static std::map<Key, Value> cache;
  std::lock_guard<std::mutex> lock(mutex);
  auto it = cache.find(key);
  if (it == cache.end()) it = cache.emplace(key, compute()).first;
  return it->second;
}

}  // namespace fusedlse

clear_the_grains_cache_for_all_minions:
  runner.cache.clear_grains

{% if 'act' in data and data['act'] == 'pend' and data['id'].startswith('Min') %}
key_accept:
  wheel.key.accept:
    - match: {{ data['id'] }}
{% endif %}

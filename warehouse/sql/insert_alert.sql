insert into alerts (
    alert_id, kind, group_type, group_value, group_label, direction, window_start, window_end,
    baseline_start, baseline_end, n_window, n_baseline, shares_before, shares_after, ci_before,
    ci_after, effect_pp, p_value, q_value, severity, evidence, model_id, created_at, dispersion
)
values (
    $alert_id, $kind, $group_type, $group_value, $group_label, $direction, $window_start,
    $window_end, $baseline_start, $baseline_end, $n_window, $n_baseline, $shares_before,
    $shares_after, $ci_before, $ci_after, $effect_pp, $p_value, $q_value, $severity, $evidence,
    $model_id, $created_at, $dispersion
);

// Why credentials a client sent were refused: the `reason` label of nixyard_auth_failures_total.
// A module of its own so that metrics.ts can list every reason at 0 from start-up without loading
// the rest of auth/ (jose, bcrypt) on a registry that has no auth.

export const AUTH_FAILURE_REASONS = ['malformed', 'unsupported_scheme', 'unknown_user', 'wrong_password', 'invalid_token', 'expired_token'] as const;
export type AuthFailureReason = (typeof AUTH_FAILURE_REASONS)[number];

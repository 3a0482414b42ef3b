/** Where the admin surface is served; shared by the gate (admin.ts) and the dashboard. */

/** The queue dashboard (bull-board). */
export const DASHBOARD_PATH = '/admin/queues';
export const LOGIN_PATH = '/admin/login';
export const LOGOUT_PATH = '/admin/logout';

/** Public API of the lab runner. */
export { runLab, resolveTimeouts, DEFAULT_TIMEOUTS, DEFAULT_REPORT_PATH, DEFAULT_LOGS_DIR } from './run.js';
export type { LabRunOptions, LabRunResult, LabTimeouts } from './run.js';
export type { LabEvent, LabEventListener } from './events.js';
export { buildQemuArgs, LabConfigError, DEFAULT_QEMU, DEFAULT_XEN_CMDLINE, DEFAULT_DOM0_CMDLINE, DEMO_PARAM } from './qemu.js';
export type { QemuCommandOptions } from './qemu.js';
export { MarkerStream, parseMarkerLine } from './markers.js';
export type { Marker, MarkerEvent, ScenarioResult, MetricValue } from './markers.js';
export { ReportBuilder, computePass, writeReport } from './report.js';
export type { Report, ReportDemo, ReportScenario } from './report.js';
export { progressPrinter, formatEvent, formatSummary } from './progress.js';

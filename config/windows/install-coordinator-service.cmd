@echo off
rem mt5-copier: the coordinator (mt5-copier run) as a Windows service, with NSSM.
rem
rem For a coordinator whose machine runs no MetaTrader 5 terminal of its own: every terminal in its config is
rem remote = true (or backend = "sim"). A coordinator that starts workers for local mt5 terminals must run in
rem the desktop session of the user who runs those terminals, which a service does not: use the scheduled
rem task (mt5-copier-coordinator-task.xml) there. README, "Running unattended on Windows".
rem
rem Edit the values below, then run this from an administrator's command prompt. It asks for the password of
rem RUN_AS, which Windows keeps for the service as for any service account (it is not written anywhere else).
rem Remove the service with: uninstall-service.cmd mt5-copier

setlocal
rem ---- edit these ------------------------------------------------------------------------------------------
rem The service's name: what "nssm start|stop|restart|status NAME" and uninstall-service.cmd take.
set "SERVICE=mt5-copier"
rem nssm.exe from https://nssm.cc/download (the win64 folder of the zip).
set "NSSM=C:\nssm\win64\nssm.exe"
rem The folder holding the virtual environment (.venv), the config and its keys. A path without spaces is
rem the easiest to get right.
set "COPIER_DIR=C:\mt5-copier"
rem The console script pip installed into the virtual environment (pyproject.toml, [project.scripts]).
set "MT5_COPIER=%COPIER_DIR%\.venv\Scripts\mt5-copier.exe"
set "CONFIG=%COPIER_DIR%\copier.toml"
rem Where NSSM writes what the process prints (a configuration error, a crash before logging starts). The
rem copier's own log files stay where they always are: state_dir\logs.
set "LOG_DIR=%COPIER_DIR%\service-logs"
rem The Windows account the service runs as: .\NAME for a local account, DOMAIN\NAME otherwise. The account
rem that created the keys (their secret key file is readable by its owner only) and owns state_dir.
set "RUN_AS=.\trader"
rem ----------------------------------------------------------------------------------------------------------

if not exist "%NSSM%" (
    echo nssm.exe is not at %NSSM%: download it from https://nssm.cc/download and set NSSM in this file.
    exit /b 1
)
if not exist "%MT5_COPIER%" (
    echo mt5-copier.exe is not at %MT5_COPIER%: install the copier into %COPIER_DIR%\.venv first.
    exit /b 1
)
rem A config with problems would exit 2 at once, and exit 2 is never restarted: say so now, not in a log.
"%MT5_COPIER%" check-config --config "%CONFIG%"
if errorlevel 1 (
    echo The config has problems ^(above^): fix them, or run this as %RUN_AS% if the keys are its own.
    exit /b 1
)
if not exist "%LOG_DIR%" mkdir "%LOG_DIR%" || goto :failed

rem Read without echo. A password holding a double quote cannot pass through cmd: give such an account
rem in services.msc instead (the service's Log On tab) after the installation.
set "RUN_AS_PASSWORD="
for /f "usebackq delims=" %%p in (`powershell -NoProfile -Command "$s = Read-Host -AsSecureString 'Password of %RUN_AS%'; [Runtime.InteropServices.Marshal]::PtrToStringBSTR([Runtime.InteropServices.Marshal]::SecureStringToBSTR($s))"`) do set "RUN_AS_PASSWORD=%%p"

"%NSSM%" install "%SERVICE%" "%MT5_COPIER%" || goto :failed
rem NSSM joins its arguments with spaces: the config's path keeps its quotes only as """PATH""" (NSSM README).
"%NSSM%" set "%SERVICE%" AppParameters run --config """%CONFIG%""" || goto :failed
"%NSSM%" set "%SERVICE%" AppDirectory "%COPIER_DIR%" || goto :failed
"%NSSM%" set "%SERVICE%" DisplayName "mt5-copier coordinator" || goto :failed
"%NSSM%" set "%SERVICE%" Description "Copies MetaTrader 5 pending orders from the source account to the targets (mt5-copier run)." || goto :failed
"%NSSM%" set "%SERVICE%" ObjectName "%RUN_AS%" "%RUN_AS_PASSWORD%" || goto :failed
set "RUN_AS_PASSWORD="
rem Delayed: after the network is up, so the first bind does not race it.
"%NSSM%" set "%SERVICE%" Start SERVICE_DELAYED_AUTO_START || goto :failed

rem The restart policy per exit code (config\exit_codes.py; the table in the README):
rem   0 stopped on purpose (Ctrl-C, the service stopped): stay stopped.
rem   1 sync incomplete (run --once only): restart.
rem   2 configuration error: stay stopped; a restart cannot mend it. Fix the config, then start the service.
rem   3 fatal runtime error, and any other code (a crash): restart.
"%NSSM%" set "%SERVICE%" AppExit Default Restart || goto :failed
"%NSSM%" set "%SERVICE%" AppExit 0 Exit || goto :failed
"%NSSM%" set "%SERVICE%" AppExit 1 Restart || goto :failed
"%NSSM%" set "%SERVICE%" AppExit 2 Exit || goto :failed
"%NSSM%" set "%SERVICE%" AppExit 3 Restart || goto :failed
rem 10 s before every restart. A run shorter than 30 s counts as a failed start: NSSM then waits longer after
rem each one, up to 4 minutes (the service shows as Paused meanwhile), so a crash loop does not spin.
"%NSSM%" set "%SERVICE%" AppRestartDelay 10000 || goto :failed
"%NSSM%" set "%SERVICE%" AppThrottle 30000 || goto :failed

rem Stopping: Ctrl-C first, which the coordinator takes as a stop: it stops its workers and exits 0. It gets
rem 30 s for that (per process of its tree) before NSSM tries the next method and finally TerminateProcess.
rem The console Ctrl-C goes through must exist: AppNoConsole 0.
"%NSSM%" set "%SERVICE%" AppNoConsole 0 || goto :failed
"%NSSM%" set "%SERVICE%" AppStopMethodSkip 0 || goto :failed
"%NSSM%" set "%SERVICE%" AppStopMethodConsole 30000 || goto :failed

rem What the process prints, into one file, rotated at 10 MB while it runs.
"%NSSM%" set "%SERVICE%" AppStdout "%LOG_DIR%\%SERVICE%.log" || goto :failed
"%NSSM%" set "%SERVICE%" AppStderr "%LOG_DIR%\%SERVICE%.log" || goto :failed
"%NSSM%" set "%SERVICE%" AppRotateFiles 1 || goto :failed
"%NSSM%" set "%SERVICE%" AppRotateOnline 1 || goto :failed
"%NSSM%" set "%SERVICE%" AppRotateBytes 10485760 || goto :failed
rem UTF-8 output whatever the machine's code page.
"%NSSM%" set "%SERVICE%" AppEnvironmentExtra PYTHONUTF8=1 || goto :failed

"%NSSM%" start "%SERVICE%" || goto :failed
echo.
echo %SERVICE% is installed and started. Its output: %LOG_DIR%\%SERVICE%.log; the copier's log files: state_dir\logs.
echo Health: "%MT5_COPIER%" status --config "%CONFIG%". Stop it: "%NSSM%" stop %SERVICE%.
exit /b 0

:failed
echo.
echo Installing %SERVICE% stopped at the step above. Remove what was installed: uninstall-service.cmd %SERVICE%
exit /b 1

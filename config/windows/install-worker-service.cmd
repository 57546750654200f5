@echo off
rem mt5-copier: a worker on another machine (mt5-copier worker --config worker.toml) as a Windows service,
rem with NSSM.
rem
rem Read this first. A service runs in session 0, apart from every desktop, and the MetaTrader5 package
rem reaches only a terminal of the same Windows user; whether it reaches one in another session is not
rem documented, and a terminal the worker starts itself inside session 0 has no desktop anyone sees. The
rem recommended way on a VM is the scheduled task (mt5-copier-worker-task.xml), which runs the worker in the
rem trading user's desktop session beside its terminal. Use this service only after trying it on a demo
rem account: if the worker's log says "IPC timeout" or "no IPC connection", uninstall it and use the task.
rem README, "Running unattended on Windows".
rem
rem Edit the values below, then run this from an administrator's command prompt. It asks for the password of
rem RUN_AS, which Windows keeps for the service as for any service account (it is not written anywhere else).
rem Remove the service with: uninstall-service.cmd mt5-copier-broker-a

setlocal
rem ---- edit these ------------------------------------------------------------------------------------------
rem The service's name: what "nssm start|stop|restart|status NAME" and uninstall-service.cmd take. One
rem service per terminal, so name it after the terminal.
set "SERVICE=mt5-copier-broker-a"
rem nssm.exe from https://nssm.cc/download (the win64 folder of the zip).
set "NSSM=C:\nssm\win64\nssm.exe"
rem The folder holding the virtual environment (.venv), worker.toml and its keys. A path without spaces is
rem the easiest to get right.
set "COPIER_DIR=C:\mt5-copier"
rem The console script pip installed into the virtual environment (pyproject.toml, [project.scripts]).
set "MT5_COPIER=%COPIER_DIR%\.venv\Scripts\mt5-copier.exe"
set "CONFIG=%COPIER_DIR%\worker.toml"
rem Where NSSM writes what the process prints (a configuration error, a crash before logging starts). The
rem worker's own log file is written as always (README, "Workers on other machines").
set "LOG_DIR=%COPIER_DIR%\service-logs"
rem The Windows account the service runs as: the user who runs this terminal (.\NAME for a local account,
rem DOMAIN\NAME otherwise), and who created the keys (the secret key file is readable by its owner only).
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
rem A worker file with problems would exit 2 at once, and exit 2 is never restarted: say so now, not in a log.
"%MT5_COPIER%" check-config --config "%CONFIG%"
if errorlevel 1 (
    echo The worker file has problems ^(above^): fix them, or run this as %RUN_AS% if the keys are its own.
    exit /b 1
)
if not exist "%LOG_DIR%" mkdir "%LOG_DIR%" || goto :failed

rem Read without echo. A password holding a double quote cannot pass through cmd: give such an account
rem in services.msc instead (the service's Log On tab) after the installation.
set "RUN_AS_PASSWORD="
for /f "usebackq delims=" %%p in (`powershell -NoProfile -Command "$s = Read-Host -AsSecureString 'Password of %RUN_AS%'; [Runtime.InteropServices.Marshal]::PtrToStringBSTR([Runtime.InteropServices.Marshal]::SecureStringToBSTR($s))"`) do set "RUN_AS_PASSWORD=%%p"

"%NSSM%" install "%SERVICE%" "%MT5_COPIER%" || goto :failed
rem NSSM joins its arguments with spaces: the file's path keeps its quotes only as """PATH""" (NSSM README).
"%NSSM%" set "%SERVICE%" AppParameters worker --config """%CONFIG%""" || goto :failed
"%NSSM%" set "%SERVICE%" AppDirectory "%COPIER_DIR%" || goto :failed
"%NSSM%" set "%SERVICE%" DisplayName "%SERVICE% (mt5-copier worker)" || goto :failed
"%NSSM%" set "%SERVICE%" Description "Connects one MetaTrader 5 terminal to the mt5-copier coordinator (mt5-copier worker)." || goto :failed
"%NSSM%" set "%SERVICE%" ObjectName "%RUN_AS%" "%RUN_AS_PASSWORD%" || goto :failed
set "RUN_AS_PASSWORD="
rem Delayed: after the network is up. The worker waits for its coordinator anyway, for as long as it takes.
"%NSSM%" set "%SERVICE%" Start SERVICE_DELAYED_AUTO_START || goto :failed

rem The restart policy per exit code (config\exit_codes.py; the table in the README). A worker never exits
rem because its coordinator is gone, restarting or unreachable: it waits and reconnects by itself.
rem   0 stopped on purpose (Ctrl-C, the service stopped): stay stopped.
rem   1 not used by a worker: restart.
rem   2 configuration error, or refused by the coordinator for its identity (unknown key, a name that is not
rem     its key's, an account that is not its entry's): stay stopped; a restart cannot mend it.
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

rem Stopping: Ctrl-C first, which the worker takes as a stop: it says goodbye, lets go of its terminal and
rem exits 0. It gets 15 s for that before NSSM tries the next method and finally TerminateProcess. The
rem console Ctrl-C goes through must exist: AppNoConsole 0.
"%NSSM%" set "%SERVICE%" AppNoConsole 0 || goto :failed
"%NSSM%" set "%SERVICE%" AppStopMethodSkip 0 || goto :failed
"%NSSM%" set "%SERVICE%" AppStopMethodConsole 15000 || goto :failed

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
echo %SERVICE% is installed and started. Its output: %LOG_DIR%\%SERVICE%.log.
echo Stop it: "%NSSM%" stop %SERVICE%. On the coordinator's machine, "mt5-copier status" shows whether it is online.
exit /b 0

:failed
echo.
echo Installing %SERVICE% stopped at the step above. Remove what was installed: uninstall-service.cmd %SERVICE%
exit /b 1
